// A training run's events as JSON lines (one TrainEvent per line, with the wall-clock time), appended across
// resumes, so loss and validation curves can be plotted after the run (`ctfgen plot curves`).
// A run killed mid-append leaves a torn last line; the next run on the same log cuts it off before appending, so
// the log stays one event per line. A failed append (disk full, read-only, no permission) stops the run like a
// failed checkpoint: a CtfError, and the last checkpoint is left as it was.
import { appendFileSync, closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { CtfError } from '../errors.js';
import type { TrainEvent, TrainEventSink } from './events.js';

/** runs/x/baseline.safetensors → runs/x/baseline.events.jsonl */
export function eventLogPath(checkpoint: string): string {
  return checkpoint.replace(/(\.safetensors)?$/, '.events.jsonl');
}

/**
 * Cuts a regular file back to just after its last newline (a line torn by a kill has none); returns the bytes
 * removed. A missing file, a complete last line and anything that is not a regular file are left alone.
 */
export function dropTornLastLine(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, 'r+');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size === 0) return 0;
    const chunk = Buffer.alloc(64 * 1024);
    let end = st.size;
    for (let first = true; end > 0; first = false) {
      const start = Math.max(0, end - chunk.length), n = readSync(fd, chunk, 0, end - start, start);
      const nl = chunk.subarray(0, n).lastIndexOf(0x0a);
      if (first && nl === n - 1) return 0;            // ends with a newline: nothing torn
      if (nl >= 0) { end = start + nl + 1; break; }
      end = start;
    }
    ftruncateSync(fd, end);
    return st.size - end;
  } finally {
    closeSync(fd);
  }
}

/** A sink that appends every event to `path` (synchronously, so a crash loses at most the line being written). */
export function eventLogSink(path: string): TrainEventSink {
  try {
    mkdirSync(dirname(path), { recursive: true });
    dropTornLastLine(path);
  } catch (e) {
    throw new CtfError(`cannot write the event log ${path}: ${(e as Error).message}`);
  }
  return (e: TrainEvent) => {
    try {
      appendFileSync(path, JSON.stringify({ ...e, time: new Date().toISOString() }) + '\n');
    } catch (err) {
      const why = (err as Error).message;
      throw new CtfError(`cannot append to the event log ${path}: ${why} — training stopped at step ${e.step}; ` +
        'the last checkpoint is intact: make room (or fix the permissions) and continue with --resume');
    }
  };
}

/** Both sinks, in order. */
export function teeEvents(...sinks: TrainEventSink[]): TrainEventSink {
  return (e) => { for (const s of sinks) s(e); };
}
