// Coarse-to-fine sampling end to end on tokens (docs/method.md, Sampling): stage 1 samples the coarse labels
// autoregressively (stage1.ts), stage 2 reads each whole coarse sequence once with the bidirectional auxiliary
// model and samples every fine token (stage2.ts). Decoding tokens to images is the tokenizer's job; the caller
// does it with what ctfSample returns (src/sample/pipeline.ts does, for a whole request).
import { checkCoarseMap, type CoarsePartition } from '../cluster/coarse-map.js';
import { CtfError } from '../errors.js';
import type { Gpt } from '../models/gpt.js';
import type { GenerateOptions } from './generate.js';
import { checkStage1, sampleCoarse } from './stage1.js';
import { checkAux, refine, type RefineOptions } from './stage2.js';

export interface CtfSampleOptions extends GenerateOptions {
  // Stage 1: cfgScale, temperature (τ1), topK, topP, seed, batchSize, onToken (coarse labels as they arrive).
  stage2?: RefineOptions;
}

export interface CtfSample {
  coarse: Int32Array;  // (N, T) cluster labels from stage 1
  fine: Int32Array;    // (N, T) codebook indices from stage 2, for the tokenizer's decoder
  seconds: { stage1: number; stage2: number };
}

/** Refuses a stage-1 / aux / coarse-map triple that was not made for each other, naming the mismatch. */
export function checkCtfModels(stage1: Gpt | null, aux: Gpt, map: CoarsePartition): void {
  checkCoarseMap(map, 'ctf: coarse map');
  checkAux(aux, map, 'ctf');
  if (!stage1) return;
  checkStage1(stage1, map, 'ctf');
  const s = stage1.config, a = aux.config;
  if (s.grid !== a.grid || s.numClasses !== a.numClasses)
    throw new CtfError(`ctf: stage 1 (grid ${s.grid}, ${s.numClasses} classes) and the auxiliary model ` +
      `(grid ${a.grid}, ${a.numClasses} classes) do not match`);
}

/** CTF: stage 1 (coarse AR) then stage 2 (aux), for every image of o.classes. */
export function ctfSample(stage1: Gpt, aux: Gpt, map: CoarsePartition, o: CtfSampleOptions): CtfSample {
  checkCtfModels(stage1, aux, map);
  const t0 = performance.now();
  const coarse = sampleCoarse(stage1, map, o);
  const t1 = performance.now();
  const fine = refine(aux, map, o.classes, coarse,
    { ...o.stage2, seed: o.seed, imageIndices: o.imageIndices, batchSize: o.batchSize });
  const t2 = performance.now();
  return { coarse, fine, seconds: { stage1: (t1 - t0) / 1000, stage2: (t2 - t1) / 1000 } };
}
