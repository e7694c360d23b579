// Vector quantisation with l2-normalised codes (LlamaGen's VectorQuantizer, l2_norm=True), as tape ops:
//   l2Normalize(x)                      rows / max(‖row‖, eps), like F.normalize(p=2, dim=-1)
//   vectorQuantize(z, codebook)         nearest codeword of every row of z by squared distance, and
//     zq            = codebook[index] forward, straight-through backward (dz += dzq, nothing to the codebook)
//     codebookLoss  = mean((zq − sg z)²)  gradient to the codebook rows only
//     commitLoss    = mean((sg zq − z)²)  gradient to z only
// The search scores ‖c‖² − 2 z·c for blocks of codewords in registers, never materialising the (N, V)
// distances (vqNearest; nearestRows, one sgemm per chunk, for codes wider than 16). Kernels: native/vq.cc.
import { CtfError } from '../../errors.js';
import { gradOf, record } from '../autograd.js';
import { kernel } from '../native.js';
import { nearestRows, type Nearest } from '../sampling.js';
import { Tensor, expectDType, shapeStr } from '../tensor.js';

type F32 = Float32Array;
const l2NormalizeRowsForward =
  kernel<(x: F32, y: F32, norm: F32, N: number, D: number, eps: number) => void>('l2NormalizeRowsForward');
const l2NormalizeRowsBackward =
  kernel<(y: F32, norm: F32, dy: F32, dx: F32, N: number, D: number, eps: number) => void>('l2NormalizeRowsBackward');
const vqGatherForward =
  kernel<(z: F32, cb: F32, V: number, index: Int32Array, zq: F32, N: number, D: number) => number>('vqGatherForward');
const vqNearestKernel =
  kernel<(x: F32, N: number, D: number, cb: F32, V: number, index: Int32Array, dist: F32) => void>('vqNearest');
const vqLossBackward = kernel<(z: F32, cb: F32, V: number, index: Int32Array, N: number, D: number, coef: number,
  dz: F32 | null, dcb: F32 | null) => void>('vqLossBackward');

/** x (..., D) with every row scaled to unit l2 norm (rows shorter than eps are divided by eps). */
export function l2Normalize(x: Tensor, eps = 1e-12): Tensor {
  expectDType(x, 'f32', 'l2Normalize input');
  if (x.ndim < 1 || x.dim(-1) === 0)
    throw new CtfError(`l2Normalize: input ${x.describe()} needs a non-empty last axis`);
  if (!(eps > 0)) throw new CtfError(`l2Normalize: eps ${eps} must be > 0`);
  const D = x.dim(-1), N = x.size / D;
  const out = new Tensor(new Float32Array(x.size), x.shape);
  const norm = new Float32Array(N);
  l2NormalizeRowsForward(x.f32, out.f32, norm, N, D, eps);
  return record('l2Normalize', out, [x], (dy) => {
    const dx = gradOf(x);
    if (dx) l2NormalizeRowsBackward(out.f32, norm, dy, dx, N, D, eps);
  });
}

/**
 * Nearest codebook row of every row of x (..., D): squared Euclidean distance, lowest index among ties.
 * Same contract as nearestRows, faster for the small code dims of VQ tokenizers.
 */
export function nearestCodewords(x: Tensor, codebook: Tensor): Nearest {
  expectDType(x, 'f32', 'nearestCodewords x');
  expectDType(codebook, 'f32', 'nearestCodewords codebook');
  if (codebook.ndim !== 2 || codebook.dim(0) === 0 || codebook.dim(1) === 0)
    throw new CtfError(`nearestCodewords: codebook ${codebook.describe()} must be a non-empty (V, D) matrix`);
  const [V, D] = codebook.shape as [number, number];
  if (x.ndim < 1 || x.dim(-1) !== D)
    throw new CtfError(`nearestCodewords: rows of ${x.describe()} have ${x.ndim ? x.dim(-1) : 0} features, codebook ` +
      `${shapeStr(codebook.shape)} has ${D}`);
  if (D > 16) return nearestRows(x, codebook);
  const N = x.size / D;
  const index = new Int32Array(N), dist = new Float32Array(N);
  vqNearestKernel(x.f32, N, D, codebook.f32, V, index, dist);
  return { index, dist };
}

export interface Quantized {
  zq: Tensor;            // (..., D) codebook rows, straight-through to z
  index: Int32Array;     // (N) codeword of each row (lowest index among ties)
  codebookLoss: Tensor;  // scalar mean((zq − sg z)²), gradient to the codebook
  commitLoss: Tensor;    // scalar mean((sg zq − z)²), gradient to z (weight it by β outside)
}

/**
 * z (..., D) rows against codebook (V, D); pass index to skip the search (it must be the nearest rows' for the losses
 * to mean anything).
 */
export function vectorQuantize(z: Tensor, codebook: Tensor, index?: Int32Array): Quantized {
  expectDType(z, 'f32', 'vectorQuantize z');
  expectDType(codebook, 'f32', 'vectorQuantize codebook');
  if (codebook.ndim !== 2 || codebook.dim(0) === 0)
    throw new CtfError(`vectorQuantize: codebook ${codebook.describe()} must be a non-empty (V, D) matrix`);
  const [V, D] = codebook.shape as [number, number];
  if (z.ndim < 1 || z.dim(-1) !== D)
    throw new CtfError(`vectorQuantize: rows of ${z.describe()} must have the codebook's ${D} features (codebook ` +
      `${shapeStr(codebook.shape)})`);
  const N = z.size / D;
  if (index !== undefined && index.length !== N)
    throw new CtfError(`vectorQuantize: ${index.length} indices for ${N} rows of ${z.describe()}`);
  const idx = index ?? nearestCodewords(z, codebook).index;
  const zq = new Tensor(new Float32Array(z.size), z.shape);
  const sq = N === 0 ? NaN : vqGatherForward(z.f32, codebook.f32, V, idx, zq.f32, N, D) / (N * D);
  const coef = 2 / (N * D);
  record('vqStraightThrough', zq, [z], (g) => {
    const dz = gradOf(z);
    if (dz) for (let i = 0; i < dz.length; i++) dz[i]! += g[i]!;
  });
  const codebookLoss = record('vqCodebookLoss', new Tensor(Float32Array.of(sq), []), [codebook], (g) => {
    const dcb = gradOf(codebook);
    if (dcb) vqLossBackward(z.f32, codebook.f32, V, idx, N, D, coef * g[0]!, null, dcb);
  });
  const commitLoss = record('vqCommitLoss', new Tensor(Float32Array.of(sq), []), [z], (g) => {
    const dz = gradOf(z);
    if (dz) vqLossBackward(z.f32, codebook.f32, V, idx, N, D, coef * g[0]!, dz, null);
  });
  return { zq, index: idx, codebookLoss, commitLoss };
}
