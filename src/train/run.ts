// One training run on disk, whatever it trains (the tokenizer, the evaluation classifier, a GPT), written once:
//   1. the outputs are checked before any work (src/io/outputs.ts): the checkpoint, its train state, snapshots, the
//      report and whatever else the trainer names; --resume continues them, --force replaces them;
//   2. <out>.lock is held until the run ends, so two processes never train into one checkpoint;
//   3. --resume reads <out>.train-state.safetensors, and the trainer builds its task from it; every identity check
//      the trainer names (data, tokenizer and coarse-map hashes) is compared with the saved run's, and the task's own
//      restore() compares the model config and the trajectory-deciding options;
//   4. the loop (src/train/loop.ts) runs; every checkpoint writes the train state, then the model, and at the
//      snapshot steps a kept copy of the model;
//   5. SIGINT / SIGTERM raise a stop request: the loop saves and trainRun throws Interrupted (the command exits
//      130 / 143: not finished, continue with --resume);
//   6. the trainer's finish() evaluates and returns the report, written to the report path.
// The library never prints and never exits: progress goes to `emit`, the command renders it.
// Data-parallel (plan.comm of several ranks, src/train/loop.ts): every rank builds the same task and trains its
// share of each batch; rank 0 alone checks and locks the outputs, reads the train state (handed to the others),
// writes checkpoints, train states, the event log and the report, and emits events. At every checkpoint the ranks'
// weights are compared first, and the others wait until rank 0 has written.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AdamW } from '../engine/optim.js';
import type { Tensor } from '../engine/tensor.js';
import { CtfError, Interrupted } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import {
  checkOutputs, existingSnapshots, lockOutput, type OutputLock, type PlannedInput, type PlannedOutput,
} from '../io/outputs.js';
import { snapshotPath, trainStatePath } from '../io/run-dir.js';
import { LocalCommunicator, type Communicator } from '../parallel/communicator.js';
import { saveTrainState, type LoadedTrainState, type TrainState } from './checkpoint.js';
import { eventLogPath, eventLogSink, teeEvents } from './event-log.js';
import type { TrainEventSink } from './events.js';
import { StopRequest } from './interrupt.js';
import { checkIdentity, type IdentityCheck } from './identity.js';
import { runTraining, type TrainTask } from './loop.js';
import { checkRanksInStep, loadTrainStateOnRanks } from './rank-sync.js';

/** What trainRun needs of a task; TokenizerTrainTask, ClassifierTrainTask and GptTrainTask offer it. */
export interface ResumableTask extends TrainTask {
  readonly optimizer: AdamW;
  readonly options: { gradClip: number };  // max global gradient norm, 0 = off
  readonly model: { parameters(): Tensor[] };
  lr(step: number): number;
  trainState(stepsDone: number): TrainState;
  /** Restores a saved run (same config and trajectory-deciding options, else it throws); returns its step. */
  restore(saved: LoadedTrainState): number;
}

export interface TrainRunPlan {
  out: string;                         // the model checkpoint
  outRole?: string;                    // how the user named it (default "--out")
  task: string;                        // the train state's task ("tokenizer", "gpt:stage1", …)
  inputs: (PlannedInput | null)[];     // files the run reads (never written over)
  outputs: (PlannedOutput | null)[];   // files it writes besides the checkpoint, its train state and snapshots
  report?: string;                     // where finish()'s report goes (JSON)
  eventLog?: boolean;                  // append every event to <out>.events.jsonl
  resume: boolean;
  force: boolean;
  dryRun?: boolean;                    // build the task, write nothing, train nothing
  checkpointEvery: number;             // steps between checkpoints; 0 = at the end only
  progressEvery: number;
  snapshotEvery?: number;              // also keep <out>.step<N>.safetensors every N steps (0 = none)
  emit: TrainEventSink;
  /** A further SIGINT/SIGTERM after the first (the CLI exits at once: the user does not want to wait for the save). */
  onRepeatedSignal?: (signal: NodeJS.Signals, msSinceFirst: number) => void;
  comm?: Communicator;                 // the ranks training together (default: this process alone)
  stopAt?: number;                     // save and stop (no report) once this many steps are done; 0 = never
}

/** What the trainer builds once the saved run (or null) is known. */
export interface TrainRunSetup<T extends ResumableTask> {
  task: T;
  extra: unknown;                      // stored in every train state: the run's identity (JSON)
  checks: IdentityCheck[];             // compared with a resumed state's extra
  evalEvery?: number;                  // steps between task.evalMetrics calls (0 = never)
  saveModel(path: string, step: number): Promise<void>;  // the checkpoint (or a snapshot) after `step` steps
  /** After the last step: the final evaluation; returns the report (null: none). */
  finish?(done: { step: number; seconds: number }): Promise<object | null>;
}

/** Handed to the trainer's setup: the saved run on --resume, and the save to give the task. */
export interface TrainRunContext {
  saved: LoadedTrainState | null;
  save: (stepsDone: number) => Promise<string>;
}

export interface TrainRunResult<T extends ResumableTask> {
  task: T;
  dryRun: boolean;
  step: number;                        // steps done (0 for a dry run)
  stopped: boolean;                    // stopped at plan.stopAt: saved, not finished (no report)
  report: object | null;
}

export async function trainRun<T extends ResumableTask>(
  plan: TrainRunPlan, setup: (ctx: TrainRunContext) => Promise<TrainRunSetup<T>>,
): Promise<TrainRunResult<T>> {
  const { out } = plan, role = plan.outRole ?? '--out', statePath = trainStatePath(out);
  const comm = plan.comm ?? new LocalCommunicator(), writer = comm.rank === 0;
  if (plan.resume && plan.force) throw new CtfError('trainRun: resume and force exclude each other');
  if (writer) checkOutputs({
    inputs: plan.inputs,
    outputs: [
      { role, path: out, artifact: true },
      { role: `the train state of ${role}`, path: statePath, artifact: true },
      plan.eventLog ? { role: `the event log of ${role}`, path: eventLogPath(out) } : null,
      ...plan.outputs, ...existingSnapshots(out, role),
    ],
    force: plan.force || plan.dryRun === true, resume: plan.resume,  // a dry run writes nothing
  });
  // Listening from here on: a signal while the data loads stops the run before its first step.
  const stop = new StopRequest().listen(undefined, plan.onRepeatedSignal);
  let lock: OutputLock | null = null;
  try {
    if (!plan.dryRun && writer) {
      await mkdir(dirname(out), { recursive: true });
      lock = lockOutput(out, role);
    }
    const saved = plan.resume ? await loadTrainStateOnRanks(comm, statePath, plan.task) : null;
    let built: TrainRunSetup<T> | null = null;
    const save = async (step: number): Promise<string> => {
      const s = built!, total = s.task.totalSteps, every = plan.snapshotEvery ?? 0;
      checkRanksInStep(comm, s.task.model.parameters(), step);
      if (writer) {
        await mkdir(dirname(out), { recursive: true });
        await saveTrainState(statePath, { ...s.task.trainState(step), extra: s.extra });
        await s.saveModel(out, step);
        if (every > 0 && step % every === 0 && step < total) await s.saveModel(snapshotPath(out, step), step);
      }
      comm.barrier();  // no rank goes on (or exits) before the checkpoint is whole
      return statePath;
    };
    const s = built = await setup({ saved, save });
    if (saved) checkIdentity(saved, s.checks);
    if (plan.dryRun) return { task: s.task, dryRun: true, step: 0, stopped: false, report: null };
    if (stop.requested) throw new Interrupted(stop.signal!, `stopped by ${stop.signal} before the first step`);
    const start = saved ? s.task.restore(saved) : 0;
    const every = plan.snapshotEvery ?? 0, gradClip = s.task.options.gradClip;
    const t0 = performance.now();
    const result = await runTraining(s.task, {
      optimizer: s.task.optimizer, params: s.task.model.parameters(), lr: (step) => s.task.lr(step), startStep: start,
      gradClip: gradClip > 0 ? gradClip : undefined, checkpointEvery: plan.checkpointEvery,
      checkpointAlsoAt: every > 0 ? (step) => step % every === 0 : undefined,
      progressEvery: plan.progressEvery, evalEvery: s.evalEvery ?? 0, stop, comm,
      stopAt: plan.stopAt !== undefined && plan.stopAt > 0 ? plan.stopAt : undefined,
      emit: !writer ? () => {} : plan.eventLog ? teeEvents(plan.emit, eventLogSink(eventLogPath(out))) : plan.emit,
    });
    if (result.atStopStep) return { task: s.task, dryRun: false, step: result.step, stopped: true, report: null };
    if (result.stopped) {
      const e = new Interrupted(stop.signal ?? 'SIGTERM');
      comm.exitTogether(e.exitCode);  // every rank stopped after the same step, and the checkpoint is written
      throw e;
    }
    const report = (await s.finish?.({ step: result.step, seconds: (performance.now() - t0) / 1000 })) ?? null;
    if (report && plan.report !== undefined && writer)
      await writeFileAtomic(plan.report, JSON.stringify(report, null, 2) + '\n');
    return { task: s.task, dryRun: false, step: result.step, stopped: false, report };
  } finally {
    stop.dispose();
    lock?.release();
  }
}
