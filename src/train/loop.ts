// The generic training loop: steps a task with AdamW under a learning-rate schedule, guards against
// non-finite steps, clips gradients, checkpoints every N steps, stops cleanly on a signal, and emits
// progress events with throughput and ETA. The task owns the model and the data; the loop owns time.
// Data-parallel (a communicator of several ranks): each rank's task computes its share of the global batch, one
// allreduce per step (grad-sync.ts) sums gradients, loss and stop flags, and every rank then clips and steps alike.
import { clipGradNorm, type AdamW } from '../engine/optim.js';
import type { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import type { Communicator } from '../parallel/communicator.js';
import type { TrainEventSink } from './events.js';
import { GradSync } from './grad-sync.js';
import { NonFiniteGuard } from './guard.js';
import type { StopRequest } from './interrupt.js';

export interface StepResult {
  loss: number;
  metrics?: Record<string, number>;  // per-step values; progress events report their window means
}

export interface TrainTask {
  readonly totalSteps: number;
  readonly stepsPerEpoch: number;
  readonly itemsPerStep: number;     // images (or sequences) per step, for throughput
  /**
   * Forward and backward of step `step` (0-based): loss, and gradients in the parameters. Data-parallel: of the
   * rank's rows only, as their share of the global batch's mean (token losses over the global count), so the sum
   * over the ranks is the global batch's loss, gradient and metrics.
   */
  forwardBackward(step: number): StepResult;
  /** After the optimizer applied step `step` (e.g. dead-code re-initialisation). */
  afterUpdate?(step: number): void;
  /** Metrics of the progress window that are not means of step values (e.g. codebook usage); may reset windows. */
  windowMetrics?(): Record<string, number>;
  /** Metrics of the epoch that just ended; may reset epoch counters. */
  epochMetrics?(epoch: number): Record<string, number>;
  /**
   * Evaluation metrics (e.g. validation loss) at step `stepsDone`, every `evalEvery` steps; must not touch the
   * trajectory.
   */
  evalMetrics?(stepsDone: number): Record<string, number>;
  /** Writes a checkpoint after `stepsDone` steps; returns its path. */
  save(stepsDone: number): Promise<string>;
}

export interface TrainLoopOptions {
  optimizer: AdamW;
  params: readonly Tensor[];
  lr: (step: number) => number;   // schedule over the 0-based step
  startStep: number;              // steps already done (0, or the resumed step)
  gradClip?: number;              // max global gradient norm; undefined = no clipping
  checkpointEvery?: number;       // steps between checkpoints; 0 = at the end only (default)
  checkpointAlsoAt?: (step: number) => boolean;  // further checkpoint steps (snapshots that fall between them)
  progressEvery?: number;         // steps between progress events (default 10)
  evalEvery?: number;             // steps between task.evalMetrics calls ('eval' events); 0 = never (default)
  stop?: StopRequest;
  guard?: NonFiniteGuard;
  emit: TrainEventSink;
  comm?: Communicator;            // data-parallel: the ranks that share every step (default: this process alone)
  stopAt?: number;                // save and stop once this many steps are done (a run split over several jobs)
}

export interface TrainLoopResult {
  step: number;        // steps done
  stopped: boolean;    // true when a stop request (a signal on some rank) or stopAt ended the run early
  atStopStep: boolean; // stopped by stopAt
  checkpoint: string;  // path of the last checkpoint written
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function runTraining(task: TrainTask, o: TrainLoopOptions): Promise<TrainLoopResult> {
  const every = o.progressEvery ?? 10, ckptEvery = o.checkpointEvery ?? 0, evalEvery = o.evalEvery ?? 0;
  if (!Number.isInteger(o.startStep) || o.startStep < 0 || o.startStep > task.totalSteps)
    throw new CtfError(`training: start step ${o.startStep} is outside 0..${task.totalSteps}`);
  if (!Number.isInteger(every) || every < 1)
    throw new CtfError(`training: progressEvery ${every} must be an integer ≥ 1`);
  const guard = o.guard ?? new NonFiniteGuard();
  const maxNorm = o.gradClip ?? Infinity;
  o.emit({
    type: 'start',
    step: o.startStep,
    totalSteps: task.totalSteps,
    itemsPerStep: task.itemsPerStep,
    resumed: o.startStep > 0,
  });

  let trainMs = 0;                       // time spent in steps (checkpoints excluded)
  let winMs = 0, winSteps = 0, winLoss = 0, winLr = 0;
  const winMetrics = new Map<string, number>();
  let checkpoint = '';

  const save = async (step: number): Promise<string> => {
    const t0 = performance.now();
    checkpoint = await task.save(step);
    o.emit({ type: 'checkpoint', step, path: checkpoint, ms: performance.now() - t0 });
    return checkpoint;
  };

  // Several ranks: the stop is decided by the step's allreduce, so every rank stops after the same step.
  const sync = o.comm !== undefined && o.comm.size > 1 ? new GradSync(o.comm, o.params) : null;
  let stopAgreed = false;
  let step = o.startStep;
  while (step < task.totalSteps) {
    const atStopStep = step === o.stopAt && step > o.startStep;
    if ((sync ? stopAgreed : o.stop?.requested) || atStopStep) {
      await save(step);
      const why = atStopStep ? `--stop-at ${step}` : o.stop?.signal ?? 'SIGTERM';
      o.emit({ type: 'stopped', step, signal: why, path: checkpoint });
      return { step, stopped: true, atStopStep, checkpoint };
    }
    const t0 = performance.now();
    o.optimizer.zeroGrad();
    const r = task.forwardBackward(step);
    if (sync) {
      const tr = performance.now(), s = sync.reduce(r.loss, o.stop?.requested ?? false);
      r.loss = s.loss;
      stopAgreed = s.stop;
      if (r.metrics) r.metrics = sync.reduceMetrics(r.metrics);
      // Time in the step's allreduce, waits for slower ranks included: the price of the ranks' agreement.
      r.metrics = { ...r.metrics, allreduceMs: performance.now() - tr };
    }
    const norm = clipGradNorm(o.params, maxNorm);
    const lr = o.lr(step);
    if (guard.check(step, r.loss, norm)) {
      o.optimizer.step(lr);
      task.afterUpdate?.(step);
    } else {
      o.optimizer.zeroGrad();
      o.emit({ type: 'nonfinite', step, loss: r.loss, gradNorm: norm, consecutive: guard.consecutive });
    }
    step++;
    const ms = performance.now() - t0;
    trainMs += ms;
    winMs += ms;
    winSteps++;
    if (Number.isFinite(r.loss)) winLoss += r.loss;
    winLr += lr;
    for (const [k, v] of Object.entries(r.metrics ?? {})) winMetrics.set(k, (winMetrics.get(k) ?? 0) + v);

    if (step % every === 0 || step === task.totalSteps) {
      const metrics: Record<string, number> = {};
      for (const [k, v] of winMetrics) metrics[k] = v / winSteps;
      Object.assign(metrics, task.windowMetrics?.() ?? {});
      const msPerStep = winMs / winSteps;
      o.emit({
        type: 'progress', step, totalSteps: task.totalSteps, epoch: step / task.stepsPerEpoch, loss: winLoss / winSteps,
        lr: winLr / winSteps, metrics, itemsPerSec: (1000 * task.itemsPerStep) / msPerStep, elapsedSec: trainMs / 1000,
        etaSec: ((task.totalSteps - step) * msPerStep) / 1000,
      });
      winMs = winSteps = winLoss = winLr = 0;
      winMetrics.clear();
    }
    if (step % task.stepsPerEpoch === 0) {
      const epoch = step / task.stepsPerEpoch;
      o.emit({ type: 'epoch', epoch, step, metrics: task.epochMetrics?.(epoch) ?? {} });
    }
    if (evalEvery > 0 && task.evalMetrics && step % evalEvery === 0)
      o.emit({ type: 'eval', step, epoch: step / task.stepsPerEpoch, metrics: task.evalMetrics(step) });
    if (((ckptEvery > 0 && step % ckptEvery === 0) || o.checkpointAlsoAt?.(step)) && step < task.totalSteps)
      await save(step);
    await yieldToEventLoop();  // lets a pending SIGINT handler run
  }
  await save(step);
  o.emit({ type: 'done', step, elapsedSec: trainMs / 1000 });
  return { step, stopped: false, atStopStep: false, checkpoint };
}
