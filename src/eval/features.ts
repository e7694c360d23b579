// Classifier features of image sets, without a graph, in batches: the inputs of every metric.
//
// Every image is scored through u8 pixels: generated and reconstructed images (floats about [−1, 1]) are
// rounded and clamped to u8 first (quantizeImages), exactly as they are stored in the .npz and the PNGs,
// and then mapped back with the dataset's own u8 → [−1, 1] scaling. So samples, real images and anyone
// re-scoring the .npz feed the classifier the same kind of input.
import type { Dataset } from '../data/dataset.js';
import { toModelInput } from '../data/model-input.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import { floatToU8 } from '../io/png.js';
import type { Classifier } from './classifier.js';

export interface ImageFeatures {
  n: number;
  dim: number;
  classes: number;
  features: Float32Array;  // (n, dim) the classifier's penultimate layer
  probs: Float32Array;     // (n, classes) its softmax
}

export interface FeatureOptions {
  batchSize?: number;                                // images per forward (default 250)
  onBatch?: (done: number, total: number) => void;
}

/** Floats about [−1, 1] (N, C, H, W) -> u8 (N, C, H, W), rounded and clamped (the PNG/npz pixels). */
export function quantizeImages(images: Float32Array): Uint8Array {
  const out = new Uint8Array(images.length);
  for (let i = 0; i < images.length; i++) out[i] = floatToU8(images[i]!);
  return out;
}

const U8_TO_UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 127.5 - 1);

/** u8 (N, C, H, W) -> floats in [−1, 1], the dataset's model-input scaling. */
export function unitImages(pixels: Uint8Array, out: Float32Array = new Float32Array(pixels.length)): Float32Array {
  for (let i = 0; i < pixels.length; i++) out[i] = U8_TO_UNIT[pixels[i]!]!;
  return out;
}

function checkShape(model: Classifier, c: number, h: number, w: number, what: string): void {
  const { inChannels: C, imageSize: S } = model.config;
  if (c !== C || h !== S || w !== S)
    throw new CtfError(`features: ${what} are ${c}×${h}×${w}, the classifier takes ${C}×${S}×${S} — ` +
      'evaluate images of the size and padding the classifier was trained on');
}

/** Scores `n` images whose model input `fill(first, count, out)` writes batch by batch. */
function embedBatches(
  model: Classifier,
  n: number,
  fill: (first: number, count: number, out: Float32Array) => void,
  o: FeatureOptions,
): ImageFeatures {
  const { inChannels: C, imageSize: S, featureDim: dim, numClasses: classes } = model.config;
  const bs = o.batchSize ?? 250,
    px = C * S * S;
  if (!Number.isInteger(bs) || bs < 1) throw new CtfError(`features: batchSize ${bs} must be a positive integer`);
  const features = new Float32Array(n * dim),
    probs = new Float32Array(n * classes);
  const input = new Float32Array(Math.min(bs, n) * px);
  for (let first = 0; first < n; first += bs) {
    const B = Math.min(bs, n - first);
    const x = input.subarray(0, B * px);
    fill(first, B, x);
    const e = model.embed(new Tensor(x, [B, C, S, S]));
    features.set(e.features, first * dim);
    probs.set(e.probs, first * classes);
    o.onBatch?.(first + B, n);
  }
  return { n, dim, classes, features, probs };
}

/** Features of u8 images (N, C, H, W). */
export function pixelFeatures(
  model: Classifier,
  pixels: Uint8Array,
  shape: readonly [number, number, number, number],
  o: FeatureOptions = {},
): ImageFeatures {
  const [N, C, H, W] = shape,
    px = C * H * W;
  if (pixels.length !== N * px) throw new CtfError(`features: ${pixels.length} pixels for shape [${shape.join(', ')}]`);
  checkShape(model, C, H, W, 'the images');
  return embedBatches(
    model,
    N,
    (first, count, out) => unitImages(pixels.subarray(first * px, (first + count) * px), out),
    o,
  );
}

/** Features of the first `limit` images of a dataset split (default all), in dataset order. */
export function datasetFeatures(
  model: Classifier,
  ds: Dataset,
  o: FeatureOptions & { limit?: number } = {},
): ImageFeatures {
  checkShape(model, ds.channels, ds.height, ds.width, `images of ${ds.name} ${ds.split}`);
  const n = Math.min(ds.count, o.limit ?? ds.count);
  return embedBatches(
    model,
    n,
    (first, count, out) => {
      toModelInput(
        ds,
        Int32Array.from({ length: count }, (_, i) => first + i),
        { out },
      );
    },
    o,
  );
}

/** Rows `first … first + count − 1` of a feature set. */
export function featureRows(f: ImageFeatures, first: number, count: number): ImageFeatures {
  return {
    n: count,
    dim: f.dim,
    classes: f.classes,
    features: f.features.subarray(first * f.dim, (first + count) * f.dim),
    probs: f.probs.subarray(first * f.classes, (first + count) * f.classes),
  };
}

/** Accuracy (overall and per true class) and mean negative log-likelihood of the probabilities against labels. */
export function accuracyAndLoss(
  f: Pick<ImageFeatures, 'n' | 'classes' | 'probs'>,
  labels: Int32Array,
): { accuracy: number; loss: number; perClass: number[] } {
  if (labels.length !== f.n) throw new CtfError(`accuracy: ${labels.length} labels for ${f.n} images`);
  let correct = 0,
    nll = 0;
  const hits = new Array<number>(f.classes).fill(0),
    counts = new Array<number>(f.classes).fill(0);
  for (let i = 0; i < f.n; i++) {
    const row = f.probs.subarray(i * f.classes, (i + 1) * f.classes),
      y = labels[i]!;
    let best = 0;
    for (let c = 1; c < f.classes; c++) if (row[c]! > row[best]!) best = c;
    counts[y]!++;
    if (best === y) {
      correct++;
      hits[y]!++;
    }
    nll -= Math.log(Math.max(row[y]!, 1e-30));
  }
  return {
    accuracy: correct / f.n,
    loss: nll / f.n,
    perClass: hits.map((h, c) => (counts[c]! > 0 ? h / counts[c]! : NaN)),
  };
}
