// The stage-2 ceiling: how much sample quality CTF loses in stage 2, row by row, each scored like samples.
//
//   recon                   the test split's own tokens, decoded (the tokenizer's ceiling, = rFID)
//   cluster-swap            every test token replaced by a uniformly drawn member of its cluster (what the coarse
//                           labels alone pin down, with no model choosing within the cluster)
//   aux-true-coarse         the test split's true coarse labels → the aux samples every fine token (τ2)
//   aux-true-coarse-greedy  the same, taking the aux's most likely member
//   baseline                the baseline's own samples
//   baseline-coarse-aux     those samples mapped to coarse labels → the aux re-samples their fine tokens: what stage 2
//                           costs on images whose layout is the baseline's
//   ctf                     CTF's samples (stage 1 → aux)
// Rows on test tokens use the test labels as the wanted classes; rows on samples n images, n / classes per class.
// Every row is scored against the test split (FID, IS, precision/recall, class accuracy), so the rows on test
// tokens are optimistic next to sample rows the way rFID is: compare each with its neighbours, not with samples.
import type { CoarseMap } from '../cluster/coarse-map.js';
import { firstImages, type Dataset } from '../data/dataset.js';
import { Rng } from '../engine/rng.js';
import { CtfError } from '../errors.js';
import type { Gpt } from '../models/gpt.js';
import { baselineSample } from '../ctf/baseline.js';
import type { GuidedOptions } from '../ctf/cfg.js';
import { ctfSample } from '../ctf/ctf.js';
import { refine } from '../ctf/stage2.js';
import { decodeTokens } from '../sample/images.js';
import { encodeSplit } from '../tokenizer/encode.js';
import type { VqTokenizer } from '../tokenizer/model.js';
import type { Classifier } from './classifier.js';
import { scoreImages, uniformClasses, type RealReference, type SampleQuality } from './evaluate.js';
import { pixelFeatures, quantizeImages } from './features.js';
import { nllSplit, type NllSplit } from './nll-split.js';

export const CEILING_ROWS = [
  'recon', 'cluster-swap', 'aux-true-coarse', 'aux-true-coarse-greedy', 'baseline', 'baseline-coarse-aux', 'ctf',
] as const;
export type CeilingRowName = (typeof CEILING_ROWS)[number];

export interface CeilingRow {
  name: CeilingRowName;
  images: 'test' | 'samples';
  metrics: SampleQuality;
  tokensKept: number | null;  // share of fine tokens equal to the ones the row started from (test or baseline tokens)
  coarseKept: number | null;  // share of their coarse labels kept (1 wherever stage 2 samples inside the cluster)
  seconds: number;
  preview: Uint8Array;        // (classes, C, S, S) u8: the first image of every class, for a picture
}

export interface CeilingPieces {
  tokenizer: VqTokenizer;
  map: CoarseMap;
  aux: Gpt;
  baseline?: Gpt;
  stage1?: Gpt;
  classifier: Classifier;
  test: Dataset;            // the split the rows on test tokens encode (the classifier's test split)
  real: RealReference;      // what every row is scored against
}

export interface CeilingOptions {
  n: number;                 // images per sample row, a multiple of the class count
  seed: number;
  batchSize: number;
  stage1: GuidedOptions;     // CFG, τ1, top-k/top-p of the baseline and of CTF's stage 1
  t2: number;                // τ2 of every sampled aux row
  rounds?: number;           // stage-2 rounds of every aux row (default 1; more need a masked-refinement aux)
  limit?: number;            // test images for the rows on test tokens (default: all)
  nllLimit?: number;         // test sequences of the likelihood split (default 2000; 0 = skip it)
}

/** fine (N) -> a uniformly drawn member of each one's cluster (possibly itself). */
export function clusterSwap(fine: Int32Array, map: Pick<CoarseMap, 'fineToCoarse' | 'members'>, rng: Rng): Int32Array {
  return fine.map((f) => {
    const m = map.members[map.fineToCoarse[f]!]!;
    return m[rng.int(m.length)]!;
  });
}

export function toCoarse(fine: Int32Array, map: Pick<CoarseMap, 'fineToCoarse'>): Int32Array {
  return fine.map((f) => map.fineToCoarse[f]!);
}

function sharedTokens(a: Int32Array, b: Int32Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) same += a[i] === b[i] ? 1 : 0;
  return same / a.length;
}

/**
 * Runs the rows the pieces allow (baseline rows need the baseline, the ctf row stage 1), in CEILING_ROWS order, and
 * the likelihood split of the same test tokens (nll-split.ts).
 */
export function stage2Ceiling(
  p: CeilingPieces,
  o: CeilingOptions,
  onRow?: (r: CeilingRow) => void,
): { rows: CeilingRow[]; nll: NllSplit | null } {
  const tok = p.tokenizer,
    K = p.map.k;
  if (p.aux.config.inVocab !== K || p.aux.config.outVocab !== p.map.v)
    throw new CtfError(
      `ceiling: the aux reads ${p.aux.config.inVocab} / predicts ${p.aux.config.outVocab} labels, the map has K = ` +
      `${K}, V = ${p.map.v}`,
    );
  const numClasses = p.classifier.config.numClasses;
  const rows: CeilingRow[] = [];
  const row = (
    name: CeilingRowName,
    images: CeilingRow['images'],
    fine: Int32Array,
    classes: Int32Array,
    from: Int32Array | null,
    t0: number,
  ): void => {
    const decoded = quantizeImages(decodeTokens(tok, fine, { batchSize: o.batchSize }));
    const { inChannels: C, imageSize: S } = tok.config,
      px = C * S * S,
      N = classes.length;
    const features = pixelFeatures(p.classifier, decoded, [N, C, S, S]);
    const preview = new Uint8Array(numClasses * px);
    for (let c = 0; c < numClasses; c++) {
      const i = classes.indexOf(c);
      if (i >= 0) preview.set(decoded.subarray(i * px, (i + 1) * px), c * px);
    }
    const r: CeilingRow = {
      name,
      images,
      metrics: scoreImages(features, classes, p.real),
      tokensKept: from ? sharedTokens(fine, from) : null,
      coarseKept: from ? sharedTokens(toCoarse(fine, p.map), toCoarse(from, p.map)) : null,
      seconds: (performance.now() - t0) / 1000,
      preview,
    };
    rows.push(r);
    onRow?.(r);
  };
  const stage2 = (t2: number): { temperature: number; clusterMask: boolean; rounds: number } => ({
    temperature: t2,
    clusterMask: true,
    rounds: o.rounds ?? 1,
  });

  let t0 = performance.now();
  const enc = encodeSplit(tok, firstImages(p.test, o.limit), { batchSize: 256 });
  const testFine = enc.tokens.i32,
    testClasses = enc.labels,
    T = tok.grid * tok.grid;
  const nllN = Math.min(o.nllLimit ?? 2000, testClasses.length);
  const nll =
    nllN > 0
      ? nllSplit(
          { baseline: p.baseline, stage1: p.stage1, aux: p.aux },
          p.map,
          testFine.subarray(0, nllN * T),
          testClasses.subarray(0, nllN),
        )
      : null;
  row('recon', 'test', testFine, testClasses, testFine, t0);
  t0 = performance.now();
  row(
    'cluster-swap',
    'test',
    clusterSwap(testFine, p.map, new Rng(o.seed).split('cluster-swap')),
    testClasses,
    testFine,
    t0,
  );
  const trueCoarse = toCoarse(testFine, p.map);
  for (const [name, t2] of [
    ['aux-true-coarse', o.t2],
    ['aux-true-coarse-greedy', 0],
  ] as const) {
    t0 = performance.now();
    const fine = refine(p.aux, p.map, testClasses, trueCoarse, { ...stage2(t2), seed: o.seed, batchSize: o.batchSize });
    row(name, 'test', fine, testClasses, testFine, t0);
  }

  const { classes, imageIndices } = uniformClasses(o.n, numClasses);
  const gen = { ...o.stage1, classes, imageIndices, seed: o.seed, batchSize: o.batchSize };
  if (p.baseline) {
    t0 = performance.now();
    const base = baselineSample(p.baseline, gen).fine;
    row('baseline', 'samples', base, classes, null, t0);
    t0 = performance.now();
    const coarse = toCoarse(base, p.map);
    const fine = refine(p.aux, p.map, classes, coarse, {
      ...stage2(o.t2),
      seed: o.seed,
      imageIndices,
      batchSize: o.batchSize,
    });
    row('baseline-coarse-aux', 'samples', fine, classes, base, t0);
  }
  if (p.stage1) {
    t0 = performance.now();
    row('ctf', 'samples', ctfSample(p.stage1, p.aux, p.map, { ...gen, stage2: stage2(o.t2) }).fine, classes, null, t0);
  }
  return { rows, nll };
}
