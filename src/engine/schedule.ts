// Learning-rate schedules as pure functions of the optimizer step (0-based: the number of steps already
// taken), so a resumed run recomputes the same rate from the saved step count.
import { CtfError } from '../errors.js';

export interface ConstantLrOptions {
  lr: number;
  warmup?: number;  // linear warmup steps, default 0 (LlamaGen trains at a constant rate)
}

/** lr · min(1, (step + 1) / warmup); just lr without warmup. */
export function constantLr(step: number, o: ConstantLrOptions): number {
  checkStep(step, 'constantLr');
  const warmup = o.warmup ?? 0;
  if (!(warmup >= 0)) throw new CtfError(`constantLr: warmup ${warmup} must be ≥ 0`);
  return step < warmup ? (o.lr * (step + 1)) / warmup : o.lr;
}

export interface WarmupCosineOptions {
  warmup: number;  // steps of linear warmup
  total: number;   // step at which the cosine reaches minLr (and stays)
  lr: number;      // peak rate, reached at step warmup − 1 and at step warmup
  minLr?: number;  // floor, default 0
}

/**
 *   step < warmup:          lr · (step + 1) / warmup                     (first step already moves)
 *   warmup ≤ step < total:  minLr + ½ (lr − minLr) (1 + cos(π · (step − warmup) / (total − warmup)))
 *   step ≥ total:           minLr
 */
export function warmupCosine(step: number, o: WarmupCosineOptions): number {
  checkStep(step, 'warmupCosine');
  const { warmup, total, lr } = o, minLr = o.minLr ?? 0;
  if (!(warmup >= 0) || !(total >= warmup))
    throw new CtfError(`warmupCosine: need 0 ≤ warmup (${warmup}) ≤ total (${total})`);
  if (!(lr >= minLr) || !(minLr >= 0)) throw new CtfError(`warmupCosine: need 0 ≤ minLr (${minLr}) ≤ lr (${lr})`);
  if (step < warmup) return (lr * (step + 1)) / warmup;
  if (step >= total) return minLr;
  const progress = (step - warmup) / (total - warmup);
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}

function checkStep(step: number, where: string): void {
  if (!Number.isInteger(step) || step < 0) throw new CtfError(`${where}: step ${step} must be an integer ≥ 0`);
}
