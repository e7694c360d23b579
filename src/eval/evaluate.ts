// Sample quality of a generator, the way the paper's tables measure it: sample an equal number of images
// of every class with the sampling pipeline (src/sample), time the sampling, score the u8 images with the
// evaluation classifier, and compare their features with a real split's:
//   fid             Fréchet distance of the penultimate features (reference: the real split's statistics)
//   isMean, isStd   exp(E KL(p(y|x) ‖ p(y))) over 10 splits of the samples
//   precision       share of samples inside the real k-NN manifold (k = 3); recall the converse
//   classAccuracy   share of samples the classifier puts in the class they were asked for
// The same scoring serves the "real data" row (the test split against the training split) and rFID (the
// tokenizer's reconstructions of the test split against the test split).
import { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import { LocalCommunicator, gatherConcat, maxOverRanks, shardOf, type Communicator } from '../parallel/index.js';
import { sampleImages, type SamplingRequest } from '../sample/pipeline.js';
import type { SamplerMethod, SamplerPieces } from '../sample/run-dir.js';
import type { VqTokenizer } from '../tokenizer/model.js';
import type { Dataset } from '../data/dataset.js';
import { toModelInput } from '../data/model-input.js';
import type { Classifier } from './classifier.js';
import { pixelFeatures, quantizeImages, type ImageFeatures } from './features.js';
import {
  classAccuracy,
  featureStats,
  frechetDistance,
  inceptionScore,
  precisionRecall,
  type FeatureStats,
} from './metrics.js';

export interface SampleQuality {
  fid: number;
  isMean: number;
  isStd: number;
  precision: number;
  recall: number;
  classAccuracy: number | null;  // null when the images have no wanted class
  images: number;
}

/** The real side of a comparison: statistics for FID and rows for the k-NN manifolds. */
export interface RealReference {
  stats: FeatureStats;     // of the whole reference split
  manifold: ImageFeatures; // rows whose k-NN balls make the real manifold
}

export interface ScoreOptions {
  k?: number;       // neighbours of precision/recall (default 3)
  splits?: number;  // Inception Score splits (default 10, fewer when there are fewer images)
}

/**
 * The Inception Score over splits of a fixed seeded shuffle of the rows. The splits are blocks of consecutive
 * rows, and samples come class-major (ctfgen eval asks for class 0 first), so unshuffled every split would hold a
 * single class, p(y) of a split would be that class, and the score would collapse towards 1.
 */
export function shuffledInceptionScore(
  probs: Float32Array,
  n: number,
  classes: number,
  splits: number,
): { mean: number; std: number } {
  const order = new Rng(0).split('inception-splits').permutation(n);
  const shuffled = new Float32Array(n * classes);
  order.forEach((j, i) => shuffled.set(probs.subarray(j * classes, (j + 1) * classes), i * classes));
  return inceptionScore(shuffled, n, classes, splits);
}

export function realReference(stats: ImageFeatures, manifold: ImageFeatures = stats): RealReference {
  return { stats: featureStats(stats.features, stats.n, stats.dim), manifold };
}

/** Every metric of `fake` against `real`; wanted (n) the class each image was meant to be (or null). */
export function scoreImages(
  fake: ImageFeatures,
  wanted: Int32Array | null,
  real: RealReference,
  o: ScoreOptions = {},
): SampleQuality {
  if (fake.dim !== real.stats.dim || fake.dim !== real.manifold.dim)
    throw new CtfError(
      `scoreImages: features of dim ${fake.dim} against a reference of dim ${real.stats.dim} — were they made by the ` +
      `same classifier?`,
    );
  const is = shuffledInceptionScore(fake.probs, fake.n, fake.classes, Math.min(o.splits ?? 10, fake.n));
  const pr = precisionRecall(real.manifold.features, fake.features, real.manifold.n, fake.n, fake.dim, o.k ?? 3);
  return {
    fid: frechetDistance(real.stats, featureStats(fake.features, fake.n, fake.dim)),
    isMean: is.mean,
    isStd: is.std,
    precision: pr.precision,
    recall: pr.recall,
    classAccuracy: wanted ? classAccuracy(fake.probs, fake.n, fake.classes, wanted) : null,
    images: fake.n,
  };
}

/**
 * The "real data" row: test images scored like samples against the training split — FID against the
 * whole training split's statistics, precision/recall against a seeded subset of the training split as
 * large as the test split (equal-size manifolds, as for samples), class accuracy against the true labels.
 */
export function realDataRow(
  test: ImageFeatures,
  testLabels: Int32Array,
  train: ImageFeatures,
  o: ScoreOptions & { seed?: number } = {},
): SampleQuality & { manifoldImages: number } {
  const m = Math.min(test.n, train.n),
    { dim, classes } = train;
  const pick = new Rng(o.seed ?? 0).split('real-manifold').permutation(train.n).subarray(0, m);
  const manifold: ImageFeatures = {
    n: m,
    dim,
    classes,
    features: new Float32Array(m * dim),
    probs: new Float32Array(m * classes),
  };
  pick.forEach((j, i) => {
    manifold.features.set(train.features.subarray(j * dim, (j + 1) * dim), i * dim);
    manifold.probs.set(train.probs.subarray(j * classes, (j + 1) * classes), i * classes);
  });
  return { ...scoreImages(test, testLabels, realReference(train, manifold), o), manifoldImages: m };
}

/** n images, n / numClasses of each class, class-major: image i is class ⌊i / perClass⌋, index i mod perClass. */
export function uniformClasses(
  n: number,
  numClasses: number,
): { classes: Int32Array; imageIndices: Int32Array; perClass: number } {
  if (!Number.isInteger(n) || n < 1 || n % numClasses !== 0)
    throw new CtfError(
      `evaluation: n = ${n} images cannot be split equally over ${numClasses} classes; pass a multiple of ` +
      `${numClasses}`,
    );
  const perClass = n / numClasses;
  return {
    classes: Int32Array.from({ length: n }, (_, i) => Math.floor(i / perClass)),
    imageIndices: Int32Array.from({ length: n }, (_, i) => i % perClass),
    perClass,
  };
}

export interface EvalSamplingOptions extends Omit<
  SamplingRequest,
  'classes' | 'imageIndices' | 'onProgress' | 'batchSize'
> {
  n: number; // images in all, an equal number per class
  batchSize: number; // images per sampling chunk (the paper times batches of 64)
  scoreBatch?: number; // images per classifier forward (default 250)
}

export interface EvalSamples {
  method: SamplerMethod;
  classes: Int32Array;        // (N) the class each image was asked for
  perClass: number;
  pixels: Uint8Array;         // (N, C, S, S) u8, what the PNGs and the .npz hold
  shape: [number, number, number, number];
  features: ImageFeatures;    // of the u8 images
  insideCluster: number | null;  // CTF: share of fine tokens inside their stage-1 cluster (1 with the mask)
  seconds: { stage1: number; stage2: number; decode: number; total: number; scoring: number };
  imagesPerSec: number;       // N / seconds.total: sampling and decoding, scoring excluded
}

/**
 * Samples o.n images (uniform over the classes) chunk by chunk, scores each chunk as it arrives.
 * Every image draws from its own stream named by (seed, class, index), so the chunk size never changes it.
 * With a communicator of several ranks (mpirun), each rank samples and scores its whole chunks (parallel/shard.ts)
 * and rank 0 gathers them: its result is one process's (seconds: the slowest rank's); the other ranks get null.
 */
export function sampleForEval(p: SamplerPieces, classifier: Classifier, o: EvalSamplingOptions,
  onProgress?: (done: number, total: number) => void): EvalSamples;
export function sampleForEval(p: SamplerPieces, classifier: Classifier, o: EvalSamplingOptions,
  onProgress: ((done: number, total: number) => void) | undefined, comm: Communicator): EvalSamples | null;
export function sampleForEval(
  p: SamplerPieces,
  classifier: Classifier,
  o: EvalSamplingOptions,
  onProgress?: (done: number, total: number) => void,
  comm: Communicator = new LocalCommunicator(),
): EvalSamples | null {
  const { classes, imageIndices, perClass } = uniformClasses(o.n, p.numClasses);
  const tok = p.tokenizer.model.config,
    N = o.n,
    px = tok.inChannels * tok.imageSize * tok.imageSize;
  const { inChannels: C, imageSize: S } = classifier.config;
  if (tok.inChannels !== C || tok.imageSize !== S)
    throw new CtfError(
      `evaluation: the tokenizer decodes ${tok.inChannels}×${tok.imageSize}×${tok.imageSize} images, the classifier ` +
      `takes ${C}×${S}×${S}`,
    );
  if (classifier.config.numClasses !== p.numClasses)
    throw new CtfError(
      `evaluation: the models know ${p.numClasses} classes, the classifier ${classifier.config.numClasses}`,
    );
  // This rank's images [from, to) (all of them in one process); progress scaled to the job's N.
  const { first: from, end: to } = shardOf(N, o.batchSize, comm.rank, comm.size),
    share = to - from;
  const progress =
    onProgress && ((done: number): void => onProgress(share === N ? done : ((done - from) * N) / share, N));
  const pixels = new Uint8Array(share * px);
  const features = new Float32Array(share * classifier.config.featureDim),
    probs = new Float32Array(share * p.numClasses);
  const seconds = { stage1: 0, stage2: 0, decode: 0, total: 0, scoring: 0 };
  let inside = 0;
  for (let first = from; first < to; first += o.batchSize) {
    const end = Math.min(to, first + o.batchSize);
    const r = sampleImages(p, {
      ...o,
      classes: classes.subarray(first, end),
      imageIndices: imageIndices.subarray(first, end),
      batchSize: o.batchSize,
      onProgress:
        progress &&
        ((e) => {
          if (e.phase === 'stage1') progress(first + e.done);
        }),
    });
    for (const k of ['stage1', 'stage2', 'decode', 'total'] as const) seconds[k] += r.seconds[k];
    if (r.coarse && p.map)
      for (let i = 0; i < r.fine.length; i++) inside += p.map.fineToCoarse[r.fine[i]!] === r.coarse[i] ? 1 : 0;
    const t0 = performance.now();
    const chunk = quantizeImages(r.images);
    pixels.set(chunk, (first - from) * px);
    const f = pixelFeatures(classifier, chunk, [end - first, C, S, S], { batchSize: o.scoreBatch });
    features.set(f.features, (first - from) * f.dim);
    probs.set(f.probs, (first - from) * f.classes);
    seconds.scoring += (performance.now() - t0) / 1000;
    progress?.(end);
  }
  const all = gatherEvalShares(comm, { pixels, features, probs, inside, seconds });
  if (all === null) return null;
  return {
    method: o.method,
    classes,
    perClass,
    pixels: all.pixels,
    shape: [N, C, S, S],
    features: {
      n: N,
      dim: classifier.config.featureDim,
      classes: p.numClasses,
      features: all.features,
      probs: all.probs,
    },
    insideCluster: o.method === 'ctf' ? all.inside / (N * p.grid * p.grid) : null,
    seconds: all.seconds,
    imagesPerSec: N / all.seconds.total,
  };
}

interface EvalShare {
  pixels: Uint8Array; features: Float32Array; probs: Float32Array; inside: number;
  seconds: EvalSamples['seconds'];
}

/** The ranks' shares of sampleForEval, in rank order, on rank 0 (null elsewhere); one process: its own. */
function gatherEvalShares(comm: Communicator, s: EvalShare): EvalShare | null {
  if (comm.size === 1) return s;
  const pixels = gatherConcat(comm, s.pixels), features = gatherConcat(comm, s.features);
  const probs = gatherConcat(comm, s.probs), inside = gatherConcat(comm, Float64Array.of(s.inside));
  const t = s.seconds, slowest = maxOverRanks(comm, Float64Array.of(t.stage1, t.stage2, t.decode, t.total, t.scoring));
  if (!pixels || !features || !probs || !inside || !slowest) return null;
  const [stage1 = 0, stage2 = 0, decode = 0, total = 0, scoring = 0] = slowest;
  return {
    pixels,
    features,
    probs,
    inside: inside.reduce((a, b) => a + b, 0),
    seconds: { stage1, stage2, decode, total, scoring },
  };
}

/** The tokenizer's reconstructions of the first `limit` images of a split, as u8 pixels (N, C, S, S). */
export function reconstructSplit(
  tokenizer: VqTokenizer,
  ds: Dataset,
  o: { limit?: number; batchSize?: number; onBatch?: (done: number, total: number) => void } = {},
): Uint8Array {
  const { inChannels: C, imageSize: S } = tokenizer.config;
  if (ds.channels !== C || ds.height !== S || ds.width !== S)
    throw new CtfError(
      `reconstruction: images of ${ds.name} are ${ds.channels}×${ds.height}×${ds.width}, the tokenizer takes ` +
      `${C}×${S}×${S}`,
    );
  const n = Math.min(ds.count, o.limit ?? ds.count),
    bs = o.batchSize ?? 250,
    px = C * S * S;
  const out = new Uint8Array(n * px);
  for (let first = 0; first < n; first += bs) {
    const B = Math.min(bs, n - first);
    const mb = toModelInput(
      ds,
      Int32Array.from({ length: B }, (_, i) => first + i),
    );
    out.set(quantizeImages(tokenizer.reconstruct(new Tensor(mb.x, [B, C, S, S])).recon.f32), first * px);
    o.onBatch?.(first + B, n);
  }
  return out;
}

/**
 * u8 (N, C, H, W) → u8 (N, H − 2·border, W − 2·border, C): channels last (the .npz layout other evaluators
 * read), with `border` pixels cut from every side (the padding the dataset was loaded with).
 */
export function toNhwc(
  pixels: Uint8Array,
  shape: readonly [number, number, number, number],
  border = 0,
): { data: Uint8Array; shape: [number, number, number, number] } {
  const [N, C, H, W] = shape,
    h = H - 2 * border,
    w = W - 2 * border;
  if (pixels.length !== N * C * H * W)
    throw new CtfError(`toNhwc: ${pixels.length} pixels for shape [${shape.join(', ')}]`);
  if (!Number.isInteger(border) || border < 0 || h < 1 || w < 1)
    throw new CtfError(`toNhwc: cannot cut ${border} pixels from ${H}×${W} images`);
  const out = new Uint8Array(N * h * w * C);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < h; y++) {
        const src = ((n * C + c) * H + y + border) * W + border,
          dst = (n * h + y) * w * C + c;
        for (let x = 0; x < w; x++) out[dst + x * C] = pixels[src + x]!;
      }
  return { data: out, shape: [N, h, w, C] };
}

/** Up to `perClass` images of every class from class-major samples, for a grid with one row per class. */
export function gridSelection(s: Pick<EvalSamples, 'classes' | 'perClass'>, perClass: number): number[] {
  const k = Math.min(perClass, s.perClass), classes = s.classes.length / s.perClass;
  return Array.from({ length: classes * k }, (_, i) => Math.floor(i / k) * s.perClass + (i % k));
}
