import { constants } from 'node:os';

/** The one error type ctfgen throws on bad input: the message says what, where, and what was expected. */
export class CtfError extends Error {
  override name = 'CtfError';
}

/**
 * Exit code of a process stopped by a signal, as shells report it: 128 + the signal's number (SIGINT 130, SIGTERM 143).
 */
export function signalExitCode(signal: string): number {
  const n = (constants.signals as Record<string, number | undefined>)[signal];
  return n === undefined ? 130 : 128 + n;
}

/**
 * A run stopped on request after saving its state. Not an error in the input, and not a finished run either:
 * the command exits with signalExitCode(signal), so no script mistakes the stop for success.
 */
export class Interrupted extends Error {
  override name = 'Interrupted';
  constructor(readonly signal: string, message = `stopped by ${signal}`) {
    super(message);
  }

  get exitCode(): number {
    return signalExitCode(this.signal);
  }
}

const SYSTEM_ERRORS: Record<string, string> = {
  ENOSPC: 'no space left on the device', EDQUOT: 'the disk quota is used up', EROFS: 'the file system is read-only',
  EACCES: 'permission denied', EPERM: 'operation not permitted', ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is a file, not a directory', EISDIR: 'it is a directory', EEXIST: 'it already exists',
  ENAMETOOLONG: 'the name is too long', EMFILE: 'too many open files', EIO: 'an input/output error of the device',
};

/**
 * A one-line message for an error of the operating system (Node's errno errors, which carry a code and a syscall):
 * a full disk, a missing permission, a file where a directory is needed. Null for anything else, which is a bug.
 */
export function systemErrorMessage(e: unknown): string | null {
  if (!(e instanceof Error)) return null;
  const { code, syscall, path } = e as NodeJS.ErrnoException;
  if (typeof code !== 'string' || typeof syscall !== 'string') return null;
  // mkdir -p reports a file in the way of the directory as EEXIST.
  const fileInTheWay = code === 'EEXIST' && syscall === 'mkdir';
  const why = fileInTheWay ? 'it is a file, not a directory' : (SYSTEM_ERRORS[code] ?? e.message);
  return `cannot ${syscall}${path === undefined ? '' : ` ${path}`}: ${why} (${code})`;
}
