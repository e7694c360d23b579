// Where the likelihood goes: the baseline's and CTF's negative log-likelihood of the same test tokens, each split
// into the coarse part (which cluster) and the within-cluster part (which member), in nats per token.
//
// Every fine token f_i lies in one cluster c_i = c(f_i), so for any model -log p(f_i) = -log p(c_i) - log p(f_i | c_i):
//   baseline   p(f_i | f_<i) over V; its coarse part is p(c_i | f_<i) = Σ_{g ∈ c_i} p(g | f_<i), its within part the
// rest
//   stage 1    p(c_i | c_<i) over K: the coarse part of CTF, from the coarse history only
//   aux        p(f_i | c) over V given every coarse label: within part -log p(f_i) + log Σ_{g ∈ c_i} p(g), the mass it
//              leaves outside the cluster (the cluster mask removes it when sampling) separately
// So CTF − baseline = (stage 1 − baseline coarse) + (aux within − baseline within): which stage loses the nats.
import type { CoarseMap } from '../cluster/coarse-map.js';
import { noGrad } from '../engine/autograd.js';
import { logSoftmax } from '../engine/ops/softmax.js';
import { CtfError } from '../errors.js';
import type { Gpt } from '../models/gpt.js';

export interface NllSplit {
  sequences: number;
  baseline?: { total: number; coarse: number; within: number };
  stage1?: { coarse: number };
  aux?: { within: number; outside: number };  // outside: -log of the aux's probability mass inside the true cluster
  ctf?: { total: number };                     // stage 1 coarse + aux within (with the cluster mask)
}

/** log Σ_{g ∈ members} exp(row[g]) of one row of log-probabilities. */
function logMass(row: Float32Array, members: Int32Array): number {
  let max = -Infinity;
  for (const g of members) max = Math.max(max, row[g]!);
  let s = 0;
  for (const g of members) s += Math.exp(row[g]! - max);
  return max + Math.log(s);
}

/**
 * fine (N·T) test tokens of classes (N) -> the split, over batches of `batch` sequences. Models are optional: the
 * parts of the ones given.
 */
export function nllSplit(
  m: { baseline?: Gpt; stage1?: Gpt; aux?: Gpt },
  map: CoarseMap,
  fine: Int32Array,
  classes: Int32Array,
  o: { batch?: number } = {},
): NllSplit {
  const N = classes.length,
    T = fine.length / N,
    V = map.v,
    bs = o.batch ?? 32;
  if (!Number.isInteger(T) || T < 2) throw new CtfError(`nll split: ${fine.length} tokens are not ${N} sequences`);
  const coarse = fine.map((f) => map.fineToCoarse[f]!);
  const sum = { bTotal: 0, bCoarse: 0, s1: 0, aWithin: 0, aOutside: 0 };
  noGrad(() => {
    for (let first = 0; first < N; first += bs) {
      const B = Math.min(bs, N - first),
        cls = classes.subarray(first, first + B);
      const f = fine.subarray(first * T, (first + B) * T),
        c = coarse.subarray(first * T, (first + B) * T);
      const prefix = (x: Int32Array): Int32Array => {
        const out = new Int32Array(B * (T - 1));
        for (let b = 0; b < B; b++) out.set(x.subarray(b * T, b * T + T - 1), b * (T - 1));
        return out;
      };
      if (m.baseline) {
        const lp = logSoftmax(m.baseline.forward(cls, prefix(f), { training: false })).f32; // (B, T, V)
        for (let i = 0; i < B * T; i++) {
          const row = lp.subarray(i * V, (i + 1) * V),
            lc = logMass(row, map.members[c[i]!]!);
          sum.bTotal -= row[f[i]!]!;
          sum.bCoarse -= lc;
        }
      }
      if (m.stage1) {
        const K = map.k,
          lp = logSoftmax(m.stage1.forward(cls, prefix(c), { training: false })).f32; // (B, T, K)
        for (let i = 0; i < B * T; i++) sum.s1 -= lp[i * K + c[i]!]!;
      }
      if (m.aux) {
        const fineInputs = m.aux.fineTable ? new Int32Array(B * T).fill(V) : undefined; // every position masked
        const lp = logSoftmax(m.aux.forward(cls, c, { training: false, fineInputs })).f32; // (B, T, V)
        for (let i = 0; i < B * T; i++) {
          const row = lp.subarray(i * V, (i + 1) * V),
            lc = logMass(row, map.members[c[i]!]!);
          sum.aWithin -= row[f[i]!]! - lc;
          sum.aOutside -= lc;
        }
      }
    }
  });
  const n = N * T,
    r: NllSplit = { sequences: N };
  if (m.baseline)
    r.baseline = { total: sum.bTotal / n, coarse: sum.bCoarse / n, within: (sum.bTotal - sum.bCoarse) / n };
  if (m.stage1) r.stage1 = { coarse: sum.s1 / n };
  if (m.aux) r.aux = { within: sum.aWithin / n, outside: sum.aOutside / n };
  if (r.stage1 && r.aux) r.ctf = { total: r.stage1.coarse + r.aux.within };
  return r;
}
