// Codebook usage: which codewords the encoder picks. Usage = fraction of the V codewords picked at least
// once over a window; perplexity = exp(entropy) of the pick frequencies (V when all are equally used).
// Dead-code re-initialisation moves codewords nobody picked for `window` steps onto current encoder
// outputs, so they get a chance to be used (usage 29% → ~97% in the spec's PyTorch trial).
import type { Rng } from '../engine/rng.js';
import type { Tensor } from '../engine/tensor.js';

export interface CodebookStats {
  usage: number;       // fraction of codewords picked at least once
  perplexity: number;  // exp(−Σ p log p) over the pick frequencies
}

/** Usage and perplexity of pick counts (V). */
export function codebookStats(counts: ArrayLike<number>): CodebookStats {
  let total = 0, used = 0;
  for (let j = 0; j < counts.length; j++) {
    total += counts[j]!;
    if (counts[j]! > 0) used++;
  }
  let h = 0;
  for (let j = 0; j < counts.length; j++) {
    const c = counts[j]!;
    if (c > 0) h -= (c / total) * Math.log(c / total);
  }
  return { usage: counts.length ? used / counts.length : 0, perplexity: total > 0 ? Math.exp(h) : 0 };
}

export class CodeUsage {
  /** (V) steps done when each codeword was last picked (0: never since initialisation). */
  readonly lastUsed: Int32Array;
  /** (V) steps done when each codeword was last re-initialised (0: never). */
  readonly lastReinit: Int32Array;
  /** (V) picks since the last window reset (progress reports). */
  readonly windowCounts: Float64Array;
  /** (V) picks since the last epoch reset. */
  readonly epochCounts: Float64Array;

  constructor(readonly size: number) {
    this.lastUsed = new Int32Array(size);
    this.lastReinit = new Int32Array(size);
    this.windowCounts = new Float64Array(size);
    this.epochCounts = new Float64Array(size);
  }

  /** Records the picks of the step that made `stepsDone` steps. */
  observe(index: Int32Array, stepsDone: number): void {
    for (let i = 0; i < index.length; i++) {
      const j = index[i]!;
      this.lastUsed[j] = stepsDone;
      this.windowCounts[j]!++;
      this.epochCounts[j]!++;
    }
  }

  /** Codewords neither picked nor re-initialised during the last `window` steps (as of `stepsDone`). */
  deadCodes(stepsDone: number, window: number): number[] {
    const dead: number[] = [];
    for (let j = 0; j < this.size; j++)
      if (stepsDone - Math.max(this.lastUsed[j]!, this.lastReinit[j]!) >= window) dead.push(j);
    return dead;
  }

  markReinit(codes: readonly number[], stepsDone: number): void {
    for (const j of codes) this.lastReinit[j] = stepsDone;
  }

  /** Fraction of codewords picked during the last `window` steps. */
  recentUsage(stepsDone: number, window: number): number {
    let used = 0;
    for (let j = 0; j < this.size; j++) if (this.lastUsed[j]! > 0 && stepsDone - this.lastUsed[j]! < window) used++;
    return used / this.size;
  }

  /** Stats of the window so far, then a fresh window. */
  takeWindow(): CodebookStats {
    const s = codebookStats(this.windowCounts);
    this.windowCounts.fill(0);
    return s;
  }

  takeEpoch(): CodebookStats {
    const s = codebookStats(this.epochCounts);
    this.epochCounts.fill(0);
    return s;
  }
}

/**
 * Moves each dead codeword onto a distinct row of zn (N, D), the current unit encoder codes, drawn with
 * rng (without replacement while rows last, then with a little noise). Returns how many were moved.
 */
export function reinitDeadCodes(codebook: Tensor, dead: readonly number[], zn: Float32Array, rng: Rng): number {
  const D = codebook.dim(1), N = zn.length / D;
  if (dead.length === 0 || N === 0) return 0;
  const order = rng.permutation(N);
  const cb = codebook.f32;
  dead.forEach((j, k) => {
    const row = order[k % N]!;
    for (let d = 0; d < D; d++) cb[j * D + d] = zn[row * D + d]! + (k >= N ? 1e-3 * rng.normal() : 0);
  });
  return dead.length;
}
