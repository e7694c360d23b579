// Sampling tokens from logits and finding nearest codebook rows. Pure functions over rows: each row
// draws with its own Rng, so a row's sample never depends on what else is in the batch.
import { CtfError } from '../errors.js';
import { kernel } from './native.js';
import type { Rng } from './rng.js';
import { Tensor, expectDType, shapeStr } from './tensor.js';

const sampleLogitsRows =
  kernel<
    (
      logits: Float32Array,
      N: number,
      V: number,
      temperature: number,
      topK: number,
      topP: number,
      uniforms: Float64Array,
      out: Int32Array,
    ) => void
  >('sampleLogitsRows');
const nearestRowsKernel = kernel<(x: Float32Array, N: number, D: number, codebook: Float32Array, V: number,
  index: Int32Array, dist: Float32Array) => void>('nearestRows');

export interface SampleOptions {
  temperature?: number;  // default 1; 0 means greedy (argmax)
  topK?: number;         // keep the topK highest logits; default 0 = off; 1 = greedy
  topP?: number;         // nucleus: keep the smallest most-probable set with probability ≥ topP, in (0, 1]; 1 = off
}

/** How an error names an option: the library says "stage 2: temperature", the CLI names the flag ("--t2"). */
export type OptionName = (field: string) => string;

/** The options with their defaults, or a CtfError naming the bad one: the one check of these three knobs. */
export function resolveSampleOptions(o: SampleOptions, name: OptionName): Required<SampleOptions> {
  const r = { temperature: o.temperature ?? 1, topK: o.topK ?? 0, topP: o.topP ?? 1 };
  if (!(r.temperature >= 0) || !Number.isFinite(r.temperature))
    throw new CtfError(`${name('temperature')} ${r.temperature} must be a number ≥ 0 (0 = greedy)`);
  if (!Number.isInteger(r.topK) || r.topK < 0)
    throw new CtfError(`${name('topK')} ${r.topK} must be an integer ≥ 0 (0 = off, 1 = greedy)`);
  if (!(r.topP > 0 && r.topP <= 1)) throw new CtfError(`${name('topP')} ${r.topP} must lie in (0, 1] (1 = off)`);
  return r;
}

/**
 * One token per row of logits (N, V): temperature → top-k → top-p (over the renormalised top-k) →
 * multinomial draw with rngs[row] (exactly one uniform53() per row, greedy rows included, so the
 * streams advance the same whatever the options). Ties: argmax and top-k prefer the lower token id.
 */
export function sampleLogits(logits: Tensor, o: SampleOptions, rngs: readonly Rng[]): Int32Array;
export function sampleLogits(
  logits: Float32Array,
  N: number,
  V: number,
  o: SampleOptions,
  rngs: readonly Rng[],
): Int32Array;
export function sampleLogits(logits: Tensor | Float32Array, ...rest: unknown[]): Int32Array {
  let data: Float32Array, N: number, V: number, o: SampleOptions, rngs: readonly Rng[];
  if (logits instanceof Tensor) {
    expectDType(logits, 'f32', 'sampleLogits logits');
    if (logits.ndim !== 2) throw new CtfError(`sampleLogits: logits ${logits.describe()} must be (N, V)`);
    [N, V] = logits.shape as [number, number];
    data = logits.f32;
    [o, rngs] = rest as [SampleOptions, readonly Rng[]];
  } else {
    data = logits;
    [N, V, o, rngs] = rest as [number, number, SampleOptions, readonly Rng[]];
    if (!Number.isInteger(N) || !Number.isInteger(V) || N < 0 || V < 1 || data.length !== N * V)
      throw new CtfError(`sampleLogits: ${data.length} logits do not form (N=${N}, V=${V})`);
  }
  const { temperature, topK, topP } = resolveSampleOptions(o, (field) => `sampleLogits: ${field}`);
  if (rngs.length !== N) throw new CtfError(`sampleLogits: ${rngs.length} rngs for ${N} rows; pass one per row`);
  const uniforms = new Float64Array(N);
  for (let r = 0; r < N; r++) uniforms[r] = rngs[r]!.uniform53();
  const out = new Int32Array(N);
  sampleLogitsRows(data, N, V, temperature, topK, topP, uniforms, out);
  return out;
}

/** One token from one row of logits (V). */
export function sampleRow(logits: Float32Array, o: SampleOptions, rng: Rng): number {
  return sampleLogits(logits, 1, logits.length, o, [rng])[0]!;
}

export interface Nearest {
  index: Int32Array;  // (N) codebook row closest to each x row; lowest index among ties
  dist: Float32Array; // (N) its squared Euclidean distance
}

/**
 * For x (..., D) viewed as N rows and codebook (V, D): the nearest codebook row of every x row by
 * squared Euclidean distance, computed as ‖x‖² − 2 x·cᵀ + ‖c‖² with sgemm in bounded row chunks.
 */
export function nearestRows(x: Tensor, codebook: Tensor): Nearest {
  expectDType(x, 'f32', 'nearestRows x');
  expectDType(codebook, 'f32', 'nearestRows codebook');
  if (codebook.ndim !== 2 || codebook.dim(0) === 0 || codebook.dim(1) === 0)
    throw new CtfError(`nearestRows: codebook ${codebook.describe()} must be a non-empty (V, D) matrix`);
  const [V, D] = codebook.shape as [number, number];
  if (x.ndim < 1 || x.dim(-1) !== D)
    throw new CtfError(`nearestRows: rows of ${x.describe()} have ${x.ndim ? x.dim(-1) : 0} features, codebook ` +
      `${shapeStr(codebook.shape)} has ${D}`);
  const N = x.size / D;
  const index = new Int32Array(N), dist = new Float32Array(N);
  nearestRowsKernel(x.f32, N, D, codebook.f32, V, index, dist);
  return { index, dist };
}
