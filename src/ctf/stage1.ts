// Stage 1 of CTF (docs/method.md, Stage 1 and Sampling): a causal GPT over the K cluster labels of the coarse map
// samples the coarse layout of every image, one label per position, class-conditioned and guided. It is the
// baseline's sampler with a smaller vocabulary: the same decode loop (generate.ts), the same guidance (cfg.ts),
// the same per-image streams — only the model and what its tokens mean differ.
import type { CoarsePartition } from '../cluster/coarse-map.js';
import { CtfError } from '../errors.js';
import type { Gpt } from '../models/gpt.js';
import { generate, type GenerateOptions } from './generate.js';

/** Refuses a stage-1 model that does not read and predict the K labels of map, naming the mismatch. */
export function checkStage1(model: Gpt, map: Pick<CoarsePartition, 'k'>, where: string): void {
  const s = model.config;
  if (!s.causal)
    throw new CtfError(`${where}: the stage-1 model is bidirectional; stage 1 needs the causal stage1 model`);
  if (s.inVocab !== map.k || s.outVocab !== map.k)
    throw new CtfError(`${where}: the stage-1 model has vocabulary ${s.inVocab} in / ${s.outVocab} out, ` +
      `the coarse map has K = ${map.k} clusters`);
}

/** Coarse labels (N, T) in [0, K), T = grid², for every image of o.classes. */
export function sampleCoarse(stage1: Gpt, map: Pick<CoarsePartition, 'k'>, o: GenerateOptions): Int32Array {
  checkStage1(stage1, map, 'stage 1');
  return generate(stage1, o);
}
