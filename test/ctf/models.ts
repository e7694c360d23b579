// Tiny random models and a coarse map for the sampling tests, and the CTF setup the stage-2 and two-stage tests share.
import { Rng } from '../../src/engine/rng.js';
import { generate } from '../../src/ctf/generate.js';
import { Gpt, gptConfig } from '../../src/models/gpt.js';
import { membersOf, type CoarsePartition } from '../../src/cluster/coarse-map.js';

export const NUM_CLASSES = 5;
export const GRID = 4;  // 16 tokens per image

/** A tiny GPT whose output head is random too (LlamaGen zero-initialises it, which would make every logit 0). */
export function tinyGpt(inVocab: number, outVocab: number, causal: boolean, seed: number): Gpt {
  const config = gptConfig('tiny', { inVocab, outVocab, numClasses: NUM_CLASSES, grid: GRID, causal });
  const model = new Gpt(config, new Rng(seed));
  new Rng(seed).split('head').fillNormal(model.output.f32, 0, 0.15);
  return model;
}

/** K clusters of uneven sizes (every one non-empty) over V fine ids, by a seeded random assignment. */
export function randomCoarseMap(k: number, v: number, seed: number): CoarsePartition {
  const rng = new Rng(seed);
  const fineToCoarse = new Int32Array(v);
  const perm = rng.permutation(v);
  for (let i = 0; i < v; i++) fineToCoarse[perm[i]!] = i < k ? i : rng.int(k);
  return { k, v, fineToCoarse, members: membersOf(fineToCoarse, k) };
}

/** Index of the largest value of row (lowest index among ties). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** Share of positions where a and b hold the same token. */
export function agreement(a: Int32Array, b: Int32Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) same += a[i] === b[i] ? 1 : 0;
  return same / a.length;
}

/** K = 8 clusters over V = 96 fine ids, a stage-1 model and an aux for them, 24 images and their coarse labels. */
export function tinyCtf(): {
  K: number; V: number; map: CoarsePartition; stage1: Gpt; aux: Gpt; classes: Int32Array; coarse: Int32Array;
} {
  const K = 8, V = 96, stage1 = tinyGpt(K, K, true, 1);
  const classes = Int32Array.from({ length: 24 }, (_, i) => i % NUM_CLASSES);
  return {
    K, V, map: randomCoarseMap(K, V, 7), stage1, aux: tinyGpt(K, V, false, 2), classes,
    coarse: generate(stage1, { classes, cfgScale: 2, seed: 1 }),
  };
}
