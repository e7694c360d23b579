// What every trainer shares: the optimiser options and their check, the learning-rate schedule from them, and the
// check that a saved run may be resumed by this one (same trajectory-deciding options, same model config), and the
// part of a resume that every task does alike.
import { constantLr, warmupCosine } from '../engine/schedule.js';
import type { AdamW } from '../engine/optim.js';
import type { RngState } from '../engine/rng.js';
import type { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import { restoreModelAndOptimizer, type LoadedTrainState } from './checkpoint.js';

export interface LrScheduleOptions {
  lr: number;                       // peak learning rate
  warmup: number;                   // linear warmup steps
  schedule: 'cosine' | 'constant';  // cosine decays to lr · minLrRatio at the last step
  minLrRatio: number;
}

/** What every trainer's options hold, whatever the task adds (OptimizerDefaults in src/cli/args.ts lists them too). */
export interface OptimizerOptions extends LrScheduleOptions {
  epochs: number; batchSize: number; weightDecay: number; gradClip: number; seed: number;
}

/** The optimiser options that decide a training's trajectory: a resume must find them unchanged. */
export const OPTIMIZER_TRAJECTORY_KEYS = [
  'epochs', 'batchSize', 'lr', 'warmup', 'schedule', 'minLrRatio', 'weightDecay', 'gradClip', 'seed',
] as const satisfies readonly (keyof OptimizerOptions)[];

/**
 * Checks the options every trainer has, by type and range: they may come from a train state (`--resume`), so
 * nothing is assumed about them. `what` names the trainer in errors ("gpt training").
 */
export function validateOptimizerOptions(options: unknown, what: string): asserts options is OptimizerOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new CtfError(`${what}: options ${JSON.stringify(options)?.slice(0, 60)}, expected an object`);
  const o = options as Record<string, unknown>;
  const bad = (k: string, expected: string): CtfError =>
    new CtfError(`${what}: ${k} = ${JSON.stringify(o[k]) ?? 'missing'}, expected ${expected}`);
  const isInt = (v: unknown, min: number): boolean => Number.isSafeInteger(v) && (v as number) >= min;
  for (const k of ['epochs', 'batchSize'] as const) if (!isInt(o[k], 1)) throw bad(k, 'a positive integer');
  for (const k of ['warmup', 'seed'] as const) if (!isInt(o[k], 0)) throw bad(k, 'an integer ≥ 0');
  const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : NaN);
  if (!(num(o['lr']) > 0)) throw bad('lr', 'a finite number > 0');
  if (!(num(o['minLrRatio']) >= 0 && num(o['minLrRatio']) <= 1)) throw bad('minLrRatio', 'a number in [0, 1]');
  for (const k of ['weightDecay', 'gradClip'] as const) if (!(num(o[k]) >= 0)) throw bad(k, 'a finite number ≥ 0');
  if (o['schedule'] !== 'cosine' && o['schedule'] !== 'constant') throw bad('schedule', 'cosine or constant');
}

/** The learning rate of 0-based `step` in a run of `totalSteps`. */
export function scheduledLr(o: LrScheduleOptions, totalSteps: number, step: number): number {
  return o.schedule === 'constant'
    ? constantLr(step, { lr: o.lr, warmup: o.warmup })
    : warmupCosine(step, {
        lr: o.lr,
        warmup: Math.min(o.warmup, totalSteps),
        total: totalSteps,
        minLr: o.lr * o.minLrRatio,
      });
}

/** JSON with object keys sorted at every depth: configs read back from a file compare equal to built ones. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b)))
      : x,
  );
}

/**
 * Throws unless `saved` was trained with the same values of the trajectory-deciding option keys and the
 * same model config (`what` names the model in the message, e.g. "tokenizer", "GPT").
 */
export function checkResumable(
  saved: LoadedTrainState,
  options: object,
  keys: readonly string[],
  config: object,
  what: string,
): void {
  const mine = options as Record<string, unknown>,
    theirs = saved.options as Record<string, unknown>;
  for (const k of keys)
    if (canonicalJson(mine[k]) !== canonicalJson(theirs[k]))
      throw new CtfError(
        `cannot resume ${saved.source}: it was trained with ${k} = ${JSON.stringify(theirs[k])}, this run has ` +
        `${JSON.stringify(mine[k])} — resume with the same options`,
      );
  if (canonicalJson(saved.config) !== canonicalJson(config))
    throw new CtfError(
      `cannot resume ${saved.source}: its ${what} config ${JSON.stringify(saved.config)} differs from this run's ` +
      `${JSON.stringify(config)}`,
    );
}

/** What a task hands to restoreTrainRun: the checks' inputs and the parts of its state that every task has. */
export interface TrainRunParts<D> {
  options: object;                 // this run's options, compared on `keys` with the saved ones
  keys: readonly string[];
  config: object;                  // this run's model config (must equal the saved one)
  what: string;                    // the model in messages ("GPT", "tokenizer")
  params: Map<string, Tensor>;     // the model's named weights, restored in place
  optimizer: AdamW;
  batches: { setState(s: D): void; getState(): { epoch: number; index: number } };
  stepsPerEpoch: number;
  rngs?: Record<string, { setState(s: RngState): void }>;  // the train state's RNG name → the stream it restores
}

/**
 * The resume every task shares: checks that the saved run may be continued by this one, restores the weights, the
 * optimiser, the named random streams and the data position, and checks that the saved step and the data position
 * agree. Returns the step the run stopped at; a task restores its own further state (e.g. code usage) besides.
 */
export function restoreTrainRun<D>(saved: LoadedTrainState, p: TrainRunParts<D>): number {
  checkResumable(saved, p.options, p.keys, p.config, p.what);
  restoreModelAndOptimizer(saved, p.params, p.optimizer);
  for (const [name, rng] of Object.entries(p.rngs ?? {})) {
    const state = saved.rng[name];
    if (!state) throw new CtfError(`cannot resume ${saved.source}: the ${name} RNG state is missing`);
    rng.setState(state);
  }
  p.batches.setState(saved.data as D);
  const pos = p.batches.getState();
  if (saved.step !== pos.epoch * p.stepsPerEpoch + pos.index)
    throw new CtfError(`cannot resume ${saved.source}: step ${saved.step} and the saved data position disagree`);
  return saved.step;
}
