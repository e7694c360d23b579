// A training run's events as JSON lines (one TrainEvent per line, with the wall-clock time), appended across
// resumes, so loss and validation curves can be plotted after the run (`ctfgen plot curves`).
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { TrainEvent, TrainEventSink } from './events.js';

/** runs/x/baseline.safetensors → runs/x/baseline.events.jsonl */
export function eventLogPath(checkpoint: string): string {
  return checkpoint.replace(/(\.safetensors)?$/, '.events.jsonl');
}

/** A sink that appends every event to `path` (synchronously, so a crash loses at most the line being written). */
export function eventLogSink(path: string): TrainEventSink {
  mkdirSync(dirname(path), { recursive: true });
  return (e: TrainEvent) => appendFileSync(path, JSON.stringify({ ...e, time: new Date().toISOString() }) + '\n');
}

/** Both sinks, in order. */
export function teeEvents(...sinks: TrainEventSink[]): TrainEventSink {
  return (e) => { for (const s of sinks) s(e); };
}
