// Atomic file writes: write a temporary file beside the target, fsync it, rename it over the target,
// fsync the directory. A crash or error leaves either the old file or the new one, never a torn one,
// and never a stray temporary file when the error is ours to catch. The temporaries a killed process left
// (<target>.tmp-<pid>-<hex>) are removed by the next write of the same target, once their process is dead.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CtfError } from '../errors.js';

export type FileData = Uint8Array | string;

function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** Whether a process with this PID exists (EPERM: it does, under another user). */
export function isProcessAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const swept = new Set<string>();

/**
 * Removes the temporaries of `path` whose writer is dead, once per target and process; returns their names.
 * A live writer's temporary (another process saving the same file right now) is left alone.
 */
export function removeStaleTemporaries(path: string): string[] {
  if (swept.has(path)) return [];
  swept.add(path);
  const prefix = `${basename(path)}.tmp-`, dir = dirname(path);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length));
    if (!m || isProcessAlive(Number(m[1]))) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(name);
    } catch { /* removed by someone else meanwhile */ }
  }
  return removed;
}

function asBytes(data: FileData): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

function describeIoError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** fsync a directory so a rename inside it survives a crash. Some filesystems refuse; that is harmless. */
function fsyncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Directories cannot be opened/fsynced on every platform; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // See fsyncDirSync.
  } finally {
    await fh?.close();
  }
}

/** Writes data to path atomically (temp file + fsync + rename + directory fsync). */
export async function writeFileAtomic(path: string, data: FileData): Promise<void> {
  removeStaleTemporaries(path);
  const tmp = tempPathFor(path);
  const bytes = asBytes(data);
  try {
    const fh = await open(tmp, 'wx');
    try {
      let off = 0;
      while (off < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, off, bytes.length - off);
        off += bytesWritten;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new CtfError(`cannot write ${path}: ${describeIoError(e)}`);
  }
  await fsyncDir(dirname(path));
}

/** The synchronous twin of writeFileAtomic (for exit handlers and small files). */
export function writeFileAtomicSync(path: string, data: FileData): void {
  removeStaleTemporaries(path);
  const tmp = tempPathFor(path);
  const bytes = asBytes(data);
  try {
    const fd = openSync(tmp, 'wx');
    try {
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* never created or already renamed */ }
    throw new CtfError(`cannot write ${path}: ${describeIoError(e)}`);
  }
  fsyncDirSync(dirname(path));
}

/**
 * Reads a whole file, with an error that names it (missing, a directory, unreadable) and an optional
 * size ceiling so a wrong path cannot pull gigabytes into memory.
 */
export async function readFileChecked(path: string, o: { maxBytes?: number; what?: string } = {}): Promise<Buffer> {
  const what = o.what ?? 'file';
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new CtfError(`${what} ${path} is not a regular file`);
    size = s.size;
  } catch (e) {
    if (e instanceof CtfError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new CtfError(
      code === 'ENOENT' ? `${what} ${path} does not exist` : `cannot read ${what} ${path}: ${describeIoError(e)}`,
    );
  }
  if (o.maxBytes !== undefined && size > o.maxBytes)
    throw new CtfError(`${what} ${path} is ${size} bytes, more than the ${o.maxBytes} allowed`);
  try {
    return await readFile(path);
  } catch (e) {
    throw new CtfError(`cannot read ${what} ${path}: ${describeIoError(e)}`);
  }
}
