// The baseline CTF is measured against (docs/method.md, Evaluation): LlamaGen's plain class-conditional GPT over
// the V fine tokens, sampled autoregressively with guidance. It is the shared decode loop (generate.ts) on a model
// whose tokens are the codebook indices themselves — what stage 1 does over K cluster labels, here over all V.
import type { Gpt } from '../models/gpt.js';
import { generate, type GenerateOptions } from './generate.js';

export interface BaselineSample {
  fine: Int32Array;               // (N, T) codebook indices, for the tokenizer's decoder
  seconds: { stage1: number };    // the one AR stage, named like CTF's first for side-by-side timing
}

/** Fine tokens for every image of o.classes, timed. */
export function baselineSample(model: Gpt, o: GenerateOptions): BaselineSample {
  const t0 = performance.now();
  const fine = generate(model, o);
  return { fine, seconds: { stage1: (performance.now() - t0) / 1000 } };
}
