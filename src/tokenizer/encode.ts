// Encoding a whole split to token grids (optionally also its mirrored copies), with throughput.
import type { Dataset } from '../data/dataset.js';
import { toModelInput } from '../data/model-input.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import type { VqTokenizer } from './model.js';

export interface EncodedSplit {
  tokens: Tensor;       // i32 (N', g, g); with flips N' = 2N and rows N.. are the mirrored images
  labels: Int32Array;   // (N')
  flipped: Int32Array;  // (N')
  seconds: number;
  imagesPerSec: number;
}

export interface EncodeOptions {
  flip?: boolean;      // also encode every image mirrored left–right
  batchSize?: number;  // default 256
  onBatch?: (done: number, total: number) => void;
}

export function encodeSplit(model: VqTokenizer, ds: Dataset, o: EncodeOptions = {}): EncodedSplit {
  const c = model.config, g = model.grid, bs = o.batchSize ?? 256;
  if (ds.channels !== c.inChannels || ds.height !== c.imageSize || ds.width !== c.imageSize)
    throw new CtfError(`tokenizer encode: images of ${ds.name} are ${ds.channels}×${ds.height}×${ds.width}, the ` +
      `tokenizer takes ${c.inChannels}×${c.imageSize}×${c.imageSize}`);
  const passes = o.flip ? 2 : 1, N = ds.count, total = passes * N;
  const tokens = new Int32Array(total * g * g), labels = new Int32Array(total), flipped = new Int32Array(total);
  const buf = new Float32Array(bs * c.inChannels * c.imageSize * c.imageSize);
  const t0 = performance.now();
  for (let p = 0; p < passes; p++)
    for (let start = 0; start < N; start += bs) {
      const B = Math.min(bs, N - start);
      const mb = toModelInput(
        ds,
        Int32Array.from({ length: B }, (_, i) => start + i),
        { flip: p === 1 ? 'all' : 'none', out: buf },
      );
      const t = model.encode(new Tensor(mb.x, [B, c.inChannels, c.imageSize, c.imageSize]));
      const row = p * N + start;
      tokens.set(t.i32, row * g * g);
      labels.set(mb.labels, row);
      flipped.fill(p, row, row + B);
      o.onBatch?.(row + B, total);
    }
  const seconds = (performance.now() - t0) / 1000;
  return {
    tokens: new Tensor(tokens, [total, g, g], { name: 'tokens' }),
    labels,
    flipped,
    seconds,
    imagesPerSec: total / seconds,
  };
}
