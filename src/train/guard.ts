// A NaN/Inf guard: a step whose loss or gradient norm is not finite is skipped (gradients dropped,
// weights untouched), and a run that keeps producing them stops with an error instead of saving
// poisoned weights over a good checkpoint.
import { CtfError } from '../errors.js';

export class NonFiniteGuard {
  consecutive = 0;
  total = 0;

  constructor(readonly maxConsecutive = 5) {}

  /** True when the step may be applied; false when it must be skipped. Throws after too many in a row. */
  check(step: number, loss: number, gradNorm: number): boolean {
    if (Number.isFinite(loss) && Number.isFinite(gradNorm)) {
      this.consecutive = 0;
      return true;
    }
    this.consecutive++;
    this.total++;
    if (this.consecutive >= this.maxConsecutive)
      throw new CtfError(`training diverged: loss ${loss}, gradient norm ${gradNorm} at step ${step}, non-finite for ` +
        `${this.consecutive} steps in a row ` +
        '— the last checkpoint is untouched; resume from it with a lower learning rate');
    return false;
  }
}
