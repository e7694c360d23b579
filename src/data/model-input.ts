// Dataset images → model input: float32 (B, C, H, W) in [-1, 1] (u8 v ↦ v / 127.5 − 1), optionally
// mirrored left–right. Random flips draw one uniform per image, in batch order, from the given Rng, so
// a batch's Rng (EpochBatches: a function of seed, epoch and index) fully decides them.
import { CtfError } from '../errors.js';
import type { Rng } from '../engine/rng.js';
import type { Dataset } from './dataset.js';

export type FlipMode = 'none' | 'random' | 'all';

export interface ModelInputOptions {
  flip?: FlipMode;       // default 'none'; 'random' flips each image with p = 0.5 (needs rng)
  rng?: Rng;
  out?: Float32Array;    // reused output buffer of at least B·C·H·W floats
  firstRow?: number;     // the indices are rows firstRow… of a batch (a rank's share): flips draw at those rows
}

export interface ModelBatch {
  x: Float32Array;                              // (B, C, H, W)
  shape: [number, number, number, number];
  labels: Int32Array;                           // (B)
  flipped: Uint8Array;                          // (B), 1 where the image was mirrored
}

const U8_TO_UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 127.5 - 1);

export function toModelInput(
  ds: Pick<Dataset, 'images' | 'labels' | 'count' | 'channels' | 'height' | 'width'>,
  indices: ArrayLike<number>,
  o: ModelInputOptions = {},
): ModelBatch {
  const flip = o.flip ?? 'none';
  if (flip === 'random' && !o.rng)
    throw new CtfError("toModelInput: flip 'random' needs an rng (e.g. the batch's rng)");
  const B = indices.length,
    C = ds.channels,
    H = ds.height,
    W = ds.width,
    size = C * H * W;
  if (o.out && o.out.length < B * size)
    throw new CtfError(`toModelInput: out holds ${o.out.length} floats, the batch needs ${B * size}`);
  const x = o.out ? o.out.subarray(0, B * size) : new Float32Array(B * size);
  const labels = new Int32Array(B),
    flipped = new Uint8Array(B);
  if (flip === 'random') for (let r = 0; r < (o.firstRow ?? 0); r++) o.rng!.uniform(); // the rows before ours
  for (let b = 0; b < B; b++) {
    const i = indices[b]!;
    if (!Number.isInteger(i) || i < 0 || i >= ds.count)
      throw new CtfError(`toModelInput: index ${i} is outside the dataset (${ds.count} images)`);
    labels[b] = ds.labels[i]!;
    const f = flip === 'all' || (flip === 'random' && o.rng!.uniform() < 0.5);
    flipped[b] = f ? 1 : 0;
    const src = i * size,
      dst = b * size;
    if (!f) {
      for (let k = 0; k < size; k++) x[dst + k] = U8_TO_UNIT[ds.images[src + k]!]!;
    } else {
      for (let row = 0; row < C * H; row++) {
        const s = src + row * W,
          d = dst + row * W;
        for (let c = 0; c < W; c++) x[d + c] = U8_TO_UNIT[ds.images[s + W - 1 - c]!]!;
      }
    }
  }
  return { x, shape: [B, C, H, W], labels, flipped };
}
