// The server's side of the sampler thread (worker.ts): one job runs at a time, at most `queue` more wait, and the
// next is refused with QueueFull (HTTP 429) and a Retry-After estimated from recent job times. A job can be cancelled
// while it waits (dropped) or runs (a flag in shared memory the sampler checks at every position). If the thread
// dies, its job fails and a new thread loads the run again.
import { Worker } from 'node:worker_threads';
import { applyBlasThreadTimeout } from '../engine/blas-env.js';
import { CtfError } from '../errors.js';
import type { GenerateJob } from './generate.js';
import type { RunInfo, StreamEvent } from './protocol.js';
import type { MembersJob, WhyJob } from './why.js';

export type JobSpec =
  | { kind: 'generate'; job: GenerateJob; stream: boolean }
  | { kind: 'why'; job: WhyJob }
  | { kind: 'members'; job: MembersJob };

export interface WorkerData { run: string; shownRun: string; cancel: SharedArrayBuffer }

export type FromWorker =
  | { type: 'ready'; info: RunInfo }
  | { type: 'fatal'; message: string }
  | { type: 'event'; id: number; event: StreamEvent }
  | { type: 'done'; id: number; result: unknown }
  | { type: 'failed'; id: number; cancelled: boolean; input: boolean; message: string };

/** The queue is full: try again after `retryAfter` seconds. */
export class QueueFull extends Error {
  override name = 'QueueFull';
  constructor(readonly retryAfter: number, waiting: number) {
    super(`the sampler is busy: ${waiting} requests are waiting already; retry in ${retryAfter} s`);
  }
}

/** The job was cancelled (its client went away) before it finished. */
export class Cancelled extends Error {
  override name = 'Cancelled';
}

export interface Ticket {
  ahead: number;                  // jobs before this one when it was queued (the running one included)
  done: Promise<unknown>;         // the job's result; rejects with CtfError (bad input), Cancelled or Error (a bug)
  cancel(): void;
}

interface Entry {
  id: number;
  spec: JobSpec;
  onEvent: (e: StreamEvent) => void;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  started: number;
}

export class SamplerThread {
  info!: RunInfo;
  readonly stats = { completed: 0, cancelled: 0, rejected: 0, failed: 0 };
  private worker!: Worker;
  private readonly cancelFlag = new Int32Array(new SharedArrayBuffer(4));
  private readonly waiting: Entry[] = [];
  private running: Entry | null = null;
  private ready = false;
  private closing = false;
  private nextId = 1;
  private meanSeconds = 1;  // running mean of job times, for Retry-After

  private constructor(private readonly run: string, private readonly shownRun: string, readonly queueLimit: number) {}

  /** Starts the thread and waits until it has loaded the run (rejects with its CtfError if it cannot). */
  static async start(run: string, o: { queue: number; shownRun?: string }): Promise<SamplerThread> {
    applyBlasThreadTimeout();  // OpenBLAS reads it from the process environment when the sampler thread loads the addon
    const t = new SamplerThread(run, o.shownRun ?? run, o.queue);
    t.info = await t.spawn();
    return t;
  }

  private spawn(): Promise<RunInfo> {
    this.ready = false;
    const cancel = this.cancelFlag.buffer as SharedArrayBuffer;
    const data: WorkerData = { run: this.run, shownRun: this.shownRun, cancel };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: data });
    this.worker = worker;
    return new Promise((resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') { this.ready = true; resolve(m.info); this.pump(); return; }
        if (m.type === 'fatal') {
          this.closing = true;  // the run cannot be loaded: no new thread either
          void worker.terminate();
          reject(new CtfError(m.message));
          return;
        }
        const e = this.running;
        if (!e || e.id !== m.id) return;  // a late message of a job already given up
        if (m.type === 'event') { e.onEvent(m.event); return; }
        this.running = null;
        const seconds = (performance.now() - e.started) / 1000;
        if (m.type === 'done') {
          this.stats.completed++;
          this.meanSeconds = 0.8 * this.meanSeconds + 0.2 * seconds;
          e.resolve(m.result);
        } else if (m.cancelled) {
          this.stats.cancelled++;
          e.reject(new Cancelled('cancelled: the client went away'));
        } else {
          if (!m.input) this.stats.failed++;
          e.reject(m.input ? new CtfError(m.message) : new Error(m.message));
        }
        this.pump();
      });
      worker.on('error', (err) => this.lost(worker, err, reject));
      worker.on('exit', (code) => this.lost(worker, new Error(`the sampler thread exited with code ${code}`), reject));
    });
  }

  /** The thread died: fail its job, and load the run in a new one (unless the server is closing). */
  private lost(worker: Worker, err: Error, reject: (e: Error) => void): void {
    if (worker !== this.worker) return;
    reject(err);
    const e = this.running;
    this.running = null;
    if (e) { this.stats.failed++; e.reject(new Error(`the sampler thread failed: ${err.message}`)); }
    if (this.closing) return;
    this.spawn().catch((e2: Error) => { for (const w of this.waiting.splice(0)) w.reject(e2); });
  }

  private pump(): void {
    if (this.running || !this.ready) return;
    const e = this.waiting.shift();
    if (!e) return;
    this.running = e;
    e.started = performance.now();
    this.worker.postMessage({ type: 'job', id: e.id, spec: e.spec });
  }

  /** Queues a job, or throws QueueFull. onEvent gets a streamed generate's events. */
  submit(spec: JobSpec, onEvent: (e: StreamEvent) => void = () => {}): Ticket {
    // Room for one running job and queueLimit waiting ones (also while a new thread loads the run).
    const busy = (this.running ? 1 : 0) + this.waiting.length;
    if (busy >= this.queueLimit + 1) {
      this.stats.rejected++;
      const retryAfter = Math.min(60, Math.max(1, Math.ceil(this.meanSeconds * (this.waiting.length + 1))));
      throw new QueueFull(retryAfter, this.waiting.length);
    }
    const id = this.nextId++;
    let entry!: Entry;
    const done = new Promise<unknown>((resolve, reject) => {
      entry = { id, spec, onEvent, resolve, reject, started: 0 };
    });
    done.catch(() => {});  // a caller that stops listening (the client left) must not leave an unhandled rejection
    this.waiting.push(entry);
    this.pump();
    return {
      ahead: busy, done,
      cancel: () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) {
          this.waiting.splice(i, 1);
          this.stats.cancelled++;
          entry.reject(new Cancelled('cancelled while waiting: the client went away'));
        } else if (this.running === entry) Atomics.store(this.cancelFlag, 0, id);
      },
    };
  }

  queue(): { running: number; waiting: number; limit: number } {
    return { running: this.running ? 1 : 0, waiting: this.waiting.length, limit: this.queueLimit };
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const w of this.waiting.splice(0)) w.reject(new Cancelled('the server is closing'));
    await this.worker.terminate();
  }
}
