// What every trainer shares: the learning-rate schedule from its options, and the check that a saved run
// may be resumed by this one (same trajectory-deciding options, same model config).
import { constantLr, warmupCosine } from '../engine/schedule.js';
import { CtfError } from '../errors.js';
import type { LoadedTrainState } from './checkpoint.js';

export interface LrScheduleOptions {
  lr: number;                       // peak learning rate
  warmup: number;                   // linear warmup steps
  schedule: 'cosine' | 'constant';  // cosine decays to lr · minLrRatio at the last step
  minLrRatio: number;
}

/** The learning rate of 0-based `step` in a run of `totalSteps`. */
export function scheduledLr(o: LrScheduleOptions, totalSteps: number, step: number): number {
  return o.schedule === 'constant'
    ? constantLr(step, { lr: o.lr, warmup: o.warmup })
    : warmupCosine(step, { lr: o.lr, warmup: Math.min(o.warmup, totalSteps), total: totalSteps, minLr: o.lr * o.minLrRatio });
}

/** JSON with object keys sorted at every depth: configs read back from a file compare equal to built ones. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b))) : x);
}

/**
 * Throws unless `saved` was trained with the same values of the trajectory-deciding option keys and the
 * same model config (`what` names the model in the message, e.g. "tokenizer", "GPT").
 */
export function checkResumable(saved: LoadedTrainState, options: object, keys: readonly string[], config: object, what: string): void {
  const mine = options as Record<string, unknown>, theirs = saved.options as Record<string, unknown>;
  for (const k of keys)
    if (canonicalJson(mine[k]) !== canonicalJson(theirs[k]))
      throw new CtfError(`cannot resume ${saved.source}: it was trained with ${k} = ${JSON.stringify(theirs[k])}, this run has ${JSON.stringify(mine[k])} — resume with the same options`);
  if (canonicalJson(saved.config) !== canonicalJson(config))
    throw new CtfError(`cannot resume ${saved.source}: its ${what} config ${JSON.stringify(saved.config)} differs from this run's ${JSON.stringify(config)}`);
}
