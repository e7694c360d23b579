// Masked refinement of the fine tokens, for a CTF aux that also reads chosen fine tokens (config.fineVocab = V + 1).
//
// The paper's stage 2 samples every fine token independently given the coarse labels, p(f | c) = Π_i p(f_i | c).
// An aux trained MaskGIT-style (Chang et al. 2022) sees the coarse label at every position plus, at some positions,
// the true fine token; the rest carry [MASK] (row V of the fine table) and take the loss. With every position masked
// it is the paper's aux; with some revealed it can choose a token knowing its neighbours' choices.
//
//   training    per sequence u ~ U[0, 1), mask ⌈cos(π/2 · u) · T⌉ positions (at least 1): MaskGIT's cosine schedule
//   validation  a fixed share revealed (0: the paper's single pass; 0.5: what refinement can buy)
import { Rng } from '../engine/rng.js';
import { CtfError } from '../errors.js';
import { IGNORE_TARGET } from './gpt.js';

export interface MaskedBatch {
  fineInputs: Int32Array;  // (B·T) the true fine token where shown, maskId where masked
  targets: Int32Array;     // (B·T) the true fine token where masked, IGNORE_TARGET where shown
  masked: number;          // masked positions in all
}

/** MaskGIT's cosine schedule: the share of tokens still masked at progress u ∈ [0, 1]. */
export function maskedShare(u: number): number {
  return Math.cos((Math.PI / 2) * u);
}

/** Masks count(row) positions of every row of fine (B·T), chosen by a seeded permutation per row. */
export function maskRows(
  fine: Int32Array,
  T: number,
  maskId: number,
  count: (row: number, rng: Rng) => number,
  rng: Rng,
): MaskedBatch {
  if (fine.length % T !== 0) throw new CtfError(`masked refinement: ${fine.length} tokens are not whole rows of ${T}`);
  const B = fine.length / T,
    fineInputs = fine.slice(),
    targets = new Int32Array(fine.length).fill(IGNORE_TARGET);
  let masked = 0;
  for (let b = 0; b < B; b++) {
    const r = rng.split(b),
      m = count(b, r);
    if (!(Number.isInteger(m) && m >= 0 && m <= T))
      throw new CtfError(`masked refinement: ${m} masked positions in a row of ${T}`);
    const order = r.split('positions').permutation(T);
    for (let j = 0; j < m; j++) {
      const i = b * T + order[j]!;
      targets[i] = fine[i]!;
      fineInputs[i] = maskId;
    }
    masked += m;
  }
  return { fineInputs, targets, masked };
}

/** A training batch: each row masks ⌈cos(π/2 · u) · T⌉ positions (at least one), u uniform. */
export function trainingMask(fine: Int32Array, T: number, maskId: number, rng: Rng): MaskedBatch {
  return maskRows(fine, T, maskId, (_, r) => Math.max(1, Math.ceil(maskedShare(r.uniform()) * T)), rng);
}

/** A validation batch: every row shows round(reveal · T) true tokens and masks the rest (reveal < 1). */
export function revealMask(fine: Int32Array, T: number, maskId: number, reveal: number, rng: Rng): MaskedBatch {
  if (!(reveal >= 0 && reveal < 1)) throw new CtfError(`masked refinement: reveal ${reveal} must be in [0, 1)`);
  return maskRows(fine, T, maskId, () => T - Math.round(reveal * T), rng);
}
