// Turning logits into tokens: classifier-free guidance, the cluster mask, temperature → top-k → top-p →
// draw. Pure functions over rows with the randomness passed in, so a seed fully decides an image. The
// row sampler itself is src/engine/sampling.ts (native); guidance mixing is src/models/kv-cache.ts.
import { CtfError } from '../errors.js';
import { Rng } from '../engine/rng.js';
import type { SampleOptions } from '../engine/sampling.js';
import { cfgCombine } from '../models/kv-cache.js';

export { sampleLogits, sampleRow, type SampleOptions } from '../engine/sampling.js';
export { cfgClasses, cfgCombine, cfgTokens } from '../models/kv-cache.js';

/** What decides a token at one position: guidance, then the row sampler. */
export interface LogitsOptions extends SampleOptions {
  /** Classifier-free guidance scale s: logits = uncond + s·(cond − uncond). 1 = none (no batch doubling). */
  cfgScale?: number;
}

/** The options with their documented defaults, checked once per call instead of once per row. */
export function resolveLogitsOptions(o: LogitsOptions, where: string): Required<LogitsOptions> {
  const r = { cfgScale: o.cfgScale ?? 1, temperature: o.temperature ?? 1, topK: o.topK ?? 0, topP: o.topP ?? 1 };
  if (!Number.isFinite(r.cfgScale)) throw new CtfError(`${where}: cfgScale ${r.cfgScale} must be a finite number (1 = no guidance)`);
  if (!(r.temperature >= 0) || !Number.isFinite(r.temperature)) throw new CtfError(`${where}: temperature ${r.temperature} must be ≥ 0 (0 = greedy)`);
  if (!Number.isInteger(r.topK) || r.topK < 0) throw new CtfError(`${where}: topK ${r.topK} must be an integer ≥ 0 (0 = off, 1 = greedy)`);
  if (!(r.topP >= 0 && r.topP <= 1)) throw new CtfError(`${where}: topP ${r.topP} must lie in [0, 1] (1 = off)`);
  return r;
}

/** True when guidance needs the doubled [cond; null] batch. */
export function usesCfg(cfgScale: number): boolean {
  return cfgScale !== 1;
}

/**
 * Rows of a doubled batch (2N, W) = [cond; uncond] -> guided rows (N, W). Works for logits and, since the output head is linear and bias-free, for final hidden states.
 */
export function guide(doubled: Float32Array, width: number, scale: number,
  out: Float32Array<ArrayBuffer> = new Float32Array(doubled.length / 2)): Float32Array {
  return cfgCombine(doubled, width, scale, out);
}

/** The part of the coarse map (src/cluster) stage 2 needs: which fine ids make up each cluster. */
export interface ClusterPartition {
  k: number;                 // number of clusters K (the coarse vocabulary)
  v: number;                 // number of fine tokens V (the codebook size)
  fineToCoarse: Int32Array;  // (V) cluster of each fine token
  members: Int32Array[];     // (K) ascending fine ids of each cluster (an empty one fails only if stage 1 predicts it)
}

/** Checks that members and fineToCoarse describe the same partition of [0, V) into K clusters. */
export function checkPartition(map: ClusterPartition, where: string): void {
  const { k, v } = map;
  if (map.fineToCoarse.length !== v || map.members.length !== k)
    throw new CtfError(`${where}: coarse map has fineToCoarse of ${map.fineToCoarse.length} (V = ${v}) and ${map.members.length} member lists (K = ${k})`);
  let total = 0;
  for (let c = 0; c < k; c++) {
    const m = map.members[c]!;
    total += m.length;
    for (let j = 0; j < m.length; j++) {
      const f = m[j]!;
      if (!(f >= 0 && f < v) || map.fineToCoarse[f] !== c || (j > 0 && f <= m[j - 1]!))
        throw new CtfError(`${where}: coarse map cluster ${c} lists fine id ${f} (position ${j}), which is out of range, unsorted or mapped to cluster ${map.fineToCoarse[f]}`);
    }
  }
  if (total !== v) throw new CtfError(`${where}: coarse map clusters hold ${total} fine ids, expected every one of V = ${v} exactly once`);
}

/** logits (N, V): every fine id outside the cluster coarse[n] of row n set to −∞, in place. */
export function maskToClusters(logits: Float32Array, V: number, coarse: Int32Array, map: ClusterPartition): Float32Array {
  const N = coarse.length;
  if (logits.length !== N * V || V !== map.v) throw new CtfError(`maskToClusters: logits of ${logits.length} values are not (${N}, V = ${map.v})`);
  for (let n = 0; n < N; n++) {
    const c = coarse[n]!;
    const m = map.members[c];
    if (!m || m.length === 0) throw new CtfError(`maskToClusters: row ${n} predicts cluster ${c}, which has no members (K = ${map.k})`);
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
