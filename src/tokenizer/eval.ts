// Tokenizer evaluation on a split: reconstruction PSNR and MSE (on the [0, 1] pixel scale, over the
// original pixels of padded datasets: metrics.ts), codebook usage and perplexity over every token of the
// split, and throughput.
import type { Dataset } from '../data/dataset.js';
import { toModelInput } from '../data/model-input.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import type { VqTokenizer } from './model.js';
import { mseInside, psnr } from './metrics.js';
import { codebookStats } from './usage.js';

export interface TokenizerEval {
  images: number;
  psnr: number;        // mean over images of 10·log10(1 / MSE_image), dB, inside the padding
  mse: number;         // mean squared error per pixel, [0, 1] scale, inside the padding
  psnrPadded: number;  // the same PSNR over the whole padded image the tokenizer sees
  border: number;      // padding pixels left out on each side
  usage: number;       // fraction of the V codewords used by the split's tokens
  perplexity: number;  // exp(entropy) of the split's token frequencies
  seconds: number;
  imagesPerSec: number;  // encode + decode
}

export interface EvalOptions {
  batchSize?: number;   // default 250
  limit?: number;       // evaluate the first `limit` images only
  /** Called after every batch with the images done so far. */
  onBatch?: (done: number, total: number) => void;
}

export function evaluateTokenizer(model: VqTokenizer, ds: Dataset, o: EvalOptions = {}): TokenizerEval {
  const c = model.config, bs = o.batchSize ?? 250, n = Math.min(ds.count, o.limit ?? ds.count);
  if (ds.channels !== c.inChannels || ds.height !== c.imageSize || ds.width !== c.imageSize)
    throw new CtfError(`tokenizer eval: images of ${ds.name} are ${ds.channels}×${ds.height}×${ds.width}, the ` +
      `tokenizer takes ${c.inChannels}×${c.imageSize}×${c.imageSize}`);
  const counts = new Float64Array(c.codebookSize);
  const border = ds.preprocessing.pad;
  let psnrSum = 0, psnrPaddedSum = 0, mseSum = 0;
  const t0 = performance.now();
  for (let start = 0; start < n; start += bs) {
    const B = Math.min(bs, n - start);
    const mb = toModelInput(ds, Int32Array.from({ length: B }, (_, i) => start + i));
    const { recon, index } = model.reconstruct(new Tensor(mb.x, [B, c.inChannels, c.imageSize, c.imageSize]));
    const shape = [B, c.inChannels, c.imageSize, c.imageSize] as const;
    for (const e of mseInside(recon.f32, mb.x, shape, border)) { psnrSum += psnr(e); mseSum += e; }
    if (border > 0) for (const e of mseInside(recon.f32, mb.x, shape)) psnrPaddedSum += psnr(e);
    for (const j of index) counts[j]!++;
    o.onBatch?.(start + B, n);
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    images: n, psnr: psnrSum / n, mse: mseSum / n, psnrPadded: border > 0 ? psnrPaddedSum / n : psnrSum / n, border,
    ...codebookStats(counts), seconds, imagesPerSec: n / seconds,
  };
}

/**
 * Originals beside their reconstructions for a grid: `count` images spread evenly over the split,
 * returned as (2·count, C, S, S) floats where rows of `cols` originals alternate with rows of their
 * reconstructions.
 */
export function reconstructionGrid(
  model: VqTokenizer,
  ds: Dataset,
  count = 32,
  cols = 8,
): { images: Float32Array; shape: [number, number, number, number] } {
  const c = model.config,
    size = c.inChannels * c.imageSize * c.imageSize;
  const n = Math.min(count, ds.count);
  const idx = Int32Array.from({ length: n }, (_, i) => Math.floor((i * ds.count) / n));
  const mb = toModelInput(ds, idx);
  const { recon } = model.reconstruct(new Tensor(mb.x, [n, c.inChannels, c.imageSize, c.imageSize]));
  const rows = Math.ceil(n / cols);
  const out = new Float32Array(2 * rows * cols * size).fill(1); // empty cells white
  for (let i = 0; i < n; i++) {
    const r = Math.floor(i / cols),
      col = i % cols;
    out.set(mb.x.subarray(i * size, (i + 1) * size), (2 * r * cols + col) * size);
    out.set(recon.f32.subarray(i * size, (i + 1) * size), ((2 * r + 1) * cols + col) * size);
  }
  for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(-1, out[i]!));
  return { images: out, shape: [2 * rows * cols, c.inChannels, c.imageSize, c.imageSize] };
}
