// Small learnable image sets for tokenizer tests: each image is a few axis-aligned rectangles of random
// grey (or colour) levels on black, shaped like a Dataset from src/data.
import type { Dataset } from '../../src/data/dataset.js';
import { Rng } from '../../src/engine/rng.js';

export function syntheticDataset(
  count: number,
  o: { size?: number; channels?: number; seed?: number; numClasses?: number } = {},
): Dataset {
  const S = o.size ?? 32,
    C = o.channels ?? 1,
    K = o.numClasses ?? 4;
  const rng = new Rng(o.seed ?? 0);
  const images = new Uint8Array(count * C * S * S),
    labels = new Int32Array(count);
  for (let n = 0; n < count; n++) {
    labels[n] = n % K;
    for (let r = 0; r < 3; r++) {
      const y0 = rng.int(S - 8),
        x0 = rng.int(S - 8),
        h = 4 + rng.int(12),
        w = 4 + rng.int(12);
      for (let c = 0; c < C; c++) {
        const v = 64 + rng.int(192);
        for (let y = y0; y < Math.min(S, y0 + h); y++)
          for (let x = x0; x < Math.min(S, x0 + w); x++) images[((n * C + c) * S + y) * S + x] = v;
      }
    }
  }
  return {
    name: 'synthetic',
    split: 'train',
    count,
    channels: C,
    height: S,
    width: S,
    numClasses: K,
    classNames: Array.from({ length: K }, (_, i) => `class${i}`),
    images,
    labels,
    flipPreservesClass: true,
    preprocessing: { pad: 0, padValue: 0, resize: null },
  };
}
