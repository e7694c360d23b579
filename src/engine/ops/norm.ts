// RMSNorm, LayerNorm and GroupNorm: fused native forward (keeps only the per-row statistics) and backward.
import { CtfError } from '../../errors.js';
import { gradOf, isRecording, record } from '../autograd.js';
import { kernel } from '../native.js';
import { Tensor, expectDType, expectShape } from '../tensor.js';
import { silu } from './elementwise.js';

type F32 = Float32Array;
const rmsNormForward =
  kernel<(x: F32, w: F32, y: F32, rstd: F32, rows: number, D: number, eps: number) => void>('rmsNormForward');
const rmsNormBackward =
  kernel<(x: F32, w: F32, rstd: F32, dy: F32, dx: F32 | null, dw: F32 | null, rows: number, D: number) => void>(
    'rmsNormBackward',
  );
const layerNormForward =
  kernel<
    (x: F32, w: F32 | null, b: F32 | null, y: F32, mean: F32, rstd: F32, rows: number, D: number, eps: number) => void
  >('layerNormForward');
const layerNormBackward = kernel<(x: F32, w: F32 | null, mean: F32, rstd: F32, dy: F32, dx: F32 | null, dw: F32 | null,
  db: F32 | null, rows: number, D: number) => void>('layerNormBackward');
const groupNormForward = kernel<(x: F32, w: F32 | null, b: F32 | null, y: F32, mean: F32, rstd: F32,
  N: number, C: number, HW: number, G: number, eps: number, silu: boolean) => void>('groupNormForward');
const groupNormBackward = kernel<(x: F32, w: F32 | null, mean: F32, rstd: F32, dy: F32, dx: F32 | null, dw: F32 | null,
  db: F32 | null, N: number, C: number, HW: number, G: number) => void>('groupNormBackward');

function checkEps(op: string, eps: number): void {
  if (!(eps >= 0)) throw new CtfError(`${op}: eps ${eps} must be ≥ 0`);
}

/** An optional per-feature parameter: null/undefined, or an f32 vector of length n. */
function checkAffine(op: string, what: string, t: Tensor | null | undefined, n: number): Tensor | null {
  if (t === null || t === undefined) return null;
  expectDType(t, 'f32', `${op} ${what}`);
  expectShape(t, [n], `${op} ${what}`);
  return t;
}

/**
 * x (..., D) · rsqrt(mean(x², last axis) + eps) · weight (D), in float32 like LlamaGen's RMSNorm.
 * Saves only rstd (one float per row) for the backward.
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-5): Tensor {
  expectDType(x, 'f32', 'rmsNorm input');
  if (x.ndim < 1 || x.dim(-1) === 0)
    throw new CtfError(`rmsNorm: input ${x.describe()} needs a non-empty feature axis`);
  const D = x.dim(-1), rows = x.size / D;
  checkAffine('rmsNorm', 'weight', weight, D);
  checkEps('rmsNorm', eps);
  const out = new Tensor(new Float32Array(x.size), x.shape);
  const rstd = new Float32Array(rows);
  rmsNormForward(x.f32, weight.f32, out.f32, rstd, rows, D, eps);
  return record('rmsNorm', out, [x, weight], (dy) => {
    const dx = gradOf(x), dw = gradOf(weight);
    if (dx || dw) rmsNormBackward(x.f32, weight.f32, rstd, dy, dx, dw, rows, D);
  });
}

/** (x − mean) / sqrt(var + eps) · weight + bias over the last axis (biased variance, like torch). */
export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  expectDType(x, 'f32', 'layerNorm input');
  if (x.ndim < 1 || x.dim(-1) === 0)
    throw new CtfError(`layerNorm: input ${x.describe()} needs a non-empty feature axis`);
  const D = x.dim(-1), rows = x.size / D;
  const w = checkAffine('layerNorm', 'weight', weight, D), b = checkAffine('layerNorm', 'bias', bias, D);
  checkEps('layerNorm', eps);
  const out = new Tensor(new Float32Array(x.size), x.shape);
  const mean = new Float32Array(rows), rstd = new Float32Array(rows);
  layerNormForward(x.f32, w?.f32 ?? null, b?.f32 ?? null, out.f32, mean, rstd, rows, D, eps);
  const inputs = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  return record('layerNorm', out, inputs, (dy) => {
    const dx = gradOf(x), dw = w ? gradOf(w) : null, db = b ? gradOf(b) : null;
    if (dx || dw || db) layerNormBackward(x.f32, w?.f32 ?? null, mean, rstd, dy, dx, dw, db, rows, D);
  });
}

/**
 * x (N, C, ...spatial) normalised over each group of C/groups channels and all spatial positions,
 * then scaled and shifted per channel by weight (C) and bias (C), like torch.nn.GroupNorm.
 */
export function groupNorm(
  x: Tensor,
  groups: number,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  return groupNormImpl(x, groups, weight, bias, eps, false);
}

/**
 * silu(groupNorm(x)), the norm-then-activation of every ResBlock. Without a graph to record (inference)
 * it is one native pass; with one it is the two ops, so gradients are exactly those of the composition.
 */
export function groupNormSilu(
  x: Tensor,
  groups: number,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  const needsGraph = isRecording() && [x, weight, bias].some((t) => t?.requiresGrad);
  return needsGraph ? silu(groupNorm(x, groups, weight, bias, eps)) : groupNormImpl(x, groups, weight, bias, eps, true);
}

function groupNormImpl(
  x: Tensor,
  groups: number,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  fusedSilu: boolean,
): Tensor {
  expectDType(x, 'f32', 'groupNorm input');
  if (x.ndim < 2) throw new CtfError(`groupNorm: input ${x.describe()} must be (N, C, ...)`);
  const N = x.dim(0),
    C = x.dim(1),
    HW = x.size / Math.max(1, N * C);
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0)
    throw new CtfError(`groupNorm: ${groups} groups do not divide the ${C} channels of ${x.describe()}`);
  if (C === 0 || HW === 0) throw new CtfError(`groupNorm: input ${x.describe()} is empty`);
  const w = checkAffine('groupNorm', 'weight', weight, C),
    b = checkAffine('groupNorm', 'bias', bias, C);
  checkEps('groupNorm', eps);
  const out = new Tensor(new Float32Array(x.size), x.shape);
  const mean = new Float32Array(N * groups),
    rstd = new Float32Array(N * groups);
  groupNormForward(x.f32, w?.f32 ?? null, b?.f32 ?? null, out.f32, mean, rstd, N, C, HW, groups, eps, fusedSilu);
  if (fusedSilu) return out; // no graph: see groupNormSilu
  const inputs = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  return record('groupNorm', out, inputs, (dy) => {
    const dx = gradOf(x),
      dw = w ? gradOf(w) : null,
      db = b ? gradOf(b) : null;
    if (dx || dw || db) groupNormBackward(x.f32, w?.f32 ?? null, mean, rstd, dy, dx, dw, db, N, C, HW, groups);
  });
}
