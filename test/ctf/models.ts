// Tiny random models and a coarse map for the sampling tests.
import { Rng } from '../../src/engine/rng.js';
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
