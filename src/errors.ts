import { constants } from 'node:os';

/** The one error type ctfgen throws on bad input: the message says what, where, and what was expected. */
export class CtfError extends Error {
  override name = 'CtfError';
}

/** Exit code of a process stopped by a signal, as shells report it: 128 + the signal's number (SIGINT 130, SIGTERM 143). */
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
