// Turning logits into tokens, besides guidance (cfg.ts): the cluster mask of stage 2, the probability of a drawn
// token, and the per-image random streams. The row sampler itself — temperature → top-k → top-p → one draw per
// row — is native (src/engine/sampling.ts: sampleLogits, resolveSampleOptions). Pure functions over rows with the
// randomness passed in, so a seed fully decides an image.
import type { CoarsePartition } from '../cluster/coarse-map.js';
import { Rng } from '../engine/rng.js';
import { CtfError } from '../errors.js';

/** logits (N, V): every fine id outside the cluster coarse[n] of row n set to −∞, in place. */
export function maskToClusters(logits: Float32Array, V: number, coarse: Int32Array,
  map: CoarsePartition): Float32Array {
  const N = coarse.length;
  if (logits.length !== N * V || V !== map.v)
    throw new CtfError(`maskToClusters: logits of ${logits.length} values are not (${N}, V = ${map.v})`);
  for (let n = 0; n < N; n++) {
    const c = coarse[n]!;
    const m = map.members[c];
    if (!m) throw new CtfError(`maskToClusters: row ${n} predicts cluster ${c}, outside [0, K = ${map.k})`);
    const row = logits.subarray(n * V, (n + 1) * V);
    let prev = 0;
    for (const f of m) {
      row.fill(-Infinity, prev, f);
      prev = f + 1;
    }
    row.fill(-Infinity, prev, V);
  }
  return logits;
}

/** softmax(row / τ)[i], the probability of token i (τ = 0, greedy, scores as τ = 1). */
export function probabilityAt(row: Float32Array, i: number, temperature: number): number {
  const t = temperature > 0 ? temperature : 1;
  let max = -Infinity, sum = 0;
  for (const v of row) max = Math.max(max, v);
  for (const v of row) sum += Math.exp((v - max) / t);
  return Math.exp((row[i]! - max) / t) / sum;
}

/**
 * Per-image random streams: image i is named by (seed, classes[i], indices[i]), so which other images share
 * its batch (or how a request is chunked) never changes it. Default index: the image's rank among the
 * request's images of the same class (the 0th, 1st, … image of class 3).
 */
export function imageRngs(seed: number, classes: Int32Array, indices?: Int32Array): Rng[] {
  if (!Number.isFinite(seed)) throw new CtfError(`sampling: seed ${seed} must be a finite number`);
  if (indices && indices.length !== classes.length)
    throw new CtfError(`sampling: ${indices.length} image indices for ${classes.length} classes; give one per image`);
  const idx = indices ?? indicesWithinClass(classes);
  const root = new Rng(seed);
  return Array.from(classes, (c, i) => root.split(`class ${c}`).split(idx[i]!));
}

/** The rank of each image among the earlier images of its class: [3, 3, 5, 3] -> [0, 1, 0, 2]. */
export function indicesWithinClass(classes: Int32Array): Int32Array {
  const seen = new Map<number, number>();
  return classes.map((c) => {
    const n = seen.get(c) ?? 0;
    seen.set(c, n + 1);
    return n;
  });
}
