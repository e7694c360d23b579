// The codebook: V codewords of dimension D, used l2-normalised (LlamaGen's l2_norm=True). Codes and
// codewords live on the unit sphere, so the nearest codeword is the one with the largest cosine.
import { noGrad } from '../engine/autograd.js';
import { l2Normalize, vectorQuantize, type Quantized } from '../engine/ops/vq.js';
import type { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';
import { param, type Module } from '../nn/module.js';

export class Quantizer implements Module {
  readonly codebook: Tensor;  // (V, D) raw codewords; only their directions matter

  /**
   * Codewords start as unit vectors in uniformly random directions (normalised normal draws). Unit raw
   * rows, like the encoder codes that dead-code re-initialisation copies in, give every codeword the
   * same effective step size under Adam.
   */
  constructor(readonly size: number, readonly dim: number, rng: Rng) {
    this.codebook = param('quantize.embedding.weight', [size, dim], (d) => {
      rng.split('quantize.embedding.weight').fillNormal(d);
      d.set(noGrad(() => l2Normalize(new Tensor(d, [size, dim]))).f32);
    });
  }

  /** z (N, D) encoder rows -> their quantised rows (straight-through), indices and losses. */
  forward(z: Tensor): Quantized & { zn: Tensor } {
    const zn = l2Normalize(z);
    return { ...vectorQuantize(zn, l2Normalize(this.codebook)), zn };
  }

  /** The unit codewords (V, D), for lookups and clustering. */
  normalizedCodebook(): Tensor {
    return l2Normalize(this.codebook);
  }

  parameters(): Tensor[] {
    return [this.codebook];
  }
}
