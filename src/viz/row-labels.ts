// Names beside the rows of an image grid (e.g. the class of each row of samples), in the built-in bitmap font.
import type { DecodedImage } from '../io/png.js';
import { CtfError } from '../errors.js';
import { forEachTextPixel, textHeight, textWidth } from './font.js';

/**
 * The grid with a white margin on its left holding labels[r] beside row r, vertically centred. rowPitch: pixels
 * from one row's top to the next; top: the first row's top (the grid's padding).
 */
export function withRowLabels(
  grid: DecodedImage,
  labels: readonly string[],
  o: { rowPitch: number; top: number; rowHeight: number },
): DecodedImage {
  const { width: W, height: H, channels: C } = grid;
  if (labels.length * o.rowPitch > H)
    throw new CtfError(`row labels: ${labels.length} rows of ${o.rowPitch} px do not fit a grid ${H} px high`);
  const scale = o.rowHeight >= 2 * textHeight() + 4 ? 2 : 1,
    margin = 6;
  const left = Math.max(0, ...labels.map((l) => textWidth(l, scale))) + 2 * margin;
  const out = new Uint8Array((W + left) * H * C).fill(255);
  for (let y = 0; y < H; y++) out.set(grid.data.subarray(y * W * C, (y + 1) * W * C), (y * (W + left) + left) * C);
  labels.forEach((label, r) => {
    const x0 = left - margin - textWidth(label, scale);
    const y0 = o.top + r * o.rowPitch + Math.floor((o.rowHeight - textHeight(scale)) / 2);
    forEachTextPixel(label, scale, (dx, dy) => {
      const x = x0 + dx,
        y = y0 + dy;
      if (y >= 0 && y < H) out.fill(40, (y * (W + left) + x) * C, (y * (W + left) + x + 1) * C);
    });
  });
  return { width: W + left, height: H, channels: C, data: out };
}
