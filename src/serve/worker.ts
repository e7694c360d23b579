// The sampler thread of `ctfgen serve`: loads the run once, then runs one job at a time for the server's queue
// (src/serve/jobs.ts), so sampling never blocks the server's event loop. Messages (jobs.ts types):
//   in:  {type: 'job', id, spec}
//   out: {type: 'ready', info} | {type: 'fatal', message} once; per job {type: 'event', id, event}… then
//        {type: 'done', id, result} or {type: 'failed', id, cancelled, input, message}
// A job is cancelled through shared memory (the main thread stores its id), checked at every sampled position.
import { parentPort, workerData } from 'node:worker_threads';
import { CtfError } from '../errors.js';
import { loadServeContext, type ServeContext } from './context.js';
import { JobCancelled, runGenerate } from './generate.js';
import type { FromWorker, JobSpec, WorkerData } from './jobs.js';
import type { StreamEvent } from './protocol.js';
import { runMembers, runWhy } from './why.js';

const port = parentPort!;
const data = workerData as WorkerData;
const cancelFlag = new Int32Array(data.cancel);
const post = (m: FromWorker): void => port.postMessage(m);

function run(ctx: ServeContext, id: number, spec: JobSpec): unknown {
  const cancelled = (): boolean => Atomics.load(cancelFlag, 0) === id;
  switch (spec.kind) {
    case 'generate': {
      // A streamed job sends every event (its results among them); a plain one only its final answer.
      const emit = spec.stream ? (event: StreamEvent): void => post({ type: 'event', id, event }) : (): void => {};
      const results = runGenerate(ctx, spec.job, emit, cancelled);
      return spec.stream ? null : results;
    }
    case 'why': return runWhy(ctx, spec.job);
    case 'members': return runMembers(ctx, spec.job);
  }
}

try {
  const ctx = await loadServeContext(data.run, data.shownRun);
  port.on('message', (m: { type: 'job'; id: number; spec: JobSpec }) => {
    try {
      post({ type: 'done', id: m.id, result: run(ctx, m.id, m.spec) });
    } catch (e) {
      // A CtfError is about the input: its message goes to the client. Anything else is a bug: the stack, for the log.
      const input = e instanceof CtfError;
      const message = e instanceof Error ? (input ? e.message : (e.stack ?? e.message)) : String(e);
      post({ type: 'failed', id: m.id, cancelled: e instanceof JobCancelled, input, message });
    }
  });
  post({ type: 'ready', info: ctx.info });
} catch (e) {
  const message = e instanceof CtfError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
  post({ type: 'fatal', message });
}
