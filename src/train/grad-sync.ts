// Data-parallel gradients: every parameter's gradient is a view into one flat Float32Array, followed by two more
// floats (the rank's share of the step's loss and its stop flag), so one allreduce-sum per step makes the
// gradients those of the global batch (each rank already divided its token losses by the global count), the loss
// the global loss, and the stop flag nonzero on every rank as soon as one rank saw a signal.
//
//   [ grad p0 | grad p1 | … | grad pK−1 | loss | stop ]
import type { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import type { Communicator } from '../parallel/communicator.js';

export interface SyncedStep {
  loss: number;   // the global batch's loss (sum of the ranks' shares)
  stop: boolean;  // some rank asked to stop
}

export class GradSync {
  readonly flat: Float32Array;
  private readonly n: number;       // gradient floats
  private metrics: Float32Array | null = null;

  /** Installs the views as the parameters' gradients (kept: zeroGrad fills buffers, it never replaces them). */
  constructor(readonly comm: Communicator, readonly params: readonly Tensor[]) {
    this.n = params.reduce((s, p) => s + p.size, 0);
    this.flat = new Float32Array(this.n + 2);
    let at = 0;
    for (const p of params) {
      if (p.grad !== null && p.grad.length !== p.size)
        throw new CtfError(`data-parallel training: ${p.describe()} has a gradient of ${p.grad.length} floats`);
      const view = this.flat.subarray(at, at + p.size);
      if (p.grad !== null) view.set(p.grad);
      p.grad = view;
      at += p.size;
    }
  }

  /** After the rank's backward: one allreduce of gradients, loss share and stop flag. */
  reduce(lossShare: number, stop: boolean): SyncedStep {
    this.checkViews();
    this.flat[this.n] = lossShare;
    this.flat[this.n + 1] = stop ? 1 : 0;
    this.comm.allreduceSum(this.flat);
    return { loss: this.flat[this.n]!, stop: this.flat[this.n + 1]! > 0 };
  }

  /** Step metrics summed over the ranks (each rank gives its rows' share); the same keys on every rank. */
  reduceMetrics(metrics: Record<string, number>): Record<string, number> {
    const keys = Object.keys(metrics);
    if (keys.length === 0) return metrics;
    if (this.metrics?.length !== keys.length) this.metrics = new Float32Array(keys.length);
    keys.forEach((k, i) => { this.metrics![i] = metrics[k]!; });
    this.comm.allreduceSum(this.metrics);
    return Object.fromEntries(keys.map((k, i) => [k, this.metrics![i]!]));
  }

  /** A parameter whose gradient was replaced (setToNone, an op adopting a buffer) would silently not be reduced. */
  private checkViews(): void {
    let at = 0;
    for (const p of this.params) {
      const g = p.grad;
      if (g === null || g.buffer !== this.flat.buffer || g.byteOffset !== this.flat.byteOffset + 4 * at)
        throw new CtfError(`data-parallel training: the gradient of ${p.describe()} is no longer a view of the ` +
          'flat buffer that is reduced over the ranks');
      at += p.size;
    }
  }
}
