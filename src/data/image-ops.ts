// Pixel transforms applied while a dataset is loaded: alpha flattening, channel layout, resizing,
// padding. All work on u8 images; decoded files are (H, W, C) interleaved, datasets (C, H, W) planar.
import { CtfError } from '../errors.js';
import type { DecodedImage } from '../io/png.js';

/**
 * A decoded image as opaque planar pixels: RGBA is composited over a uniform `background` grey level
 * (255 = white, the usual page colour of icons with transparency), then `grey` says whether every pixel
 * has R = G = B, in which case `data` has one plane, else three.
 */
export interface PlanarImage { width: number; height: number; grey: boolean; data: Uint8Array }

export function toPlanar(img: DecodedImage, background = 255): PlanarImage {
  const { width, height, channels, data } = img;
  const n = width * height;
  if (channels === 1) return { width, height, grey: true, data };
  const rgb = new Uint8Array(3 * n);
  let grey = true;
  for (let p = 0; p < n; p++) {
    let r: number, g: number, b: number;
    if (channels === 4) {
      // out = (c·a + bg·(255 − a)) / 255, rounded
      const a = data[4 * p + 3]!, ia = 255 - a, bg = background * ia;
      r = Math.round((data[4 * p]! * a + bg) / 255);
      g = Math.round((data[4 * p + 1]! * a + bg) / 255);
      b = Math.round((data[4 * p + 2]! * a + bg) / 255);
    } else {
      r = data[3 * p]!; g = data[3 * p + 1]!; b = data[3 * p + 2]!;
    }
    rgb[p] = r; rgb[n + p] = g; rgb[2 * n + p] = b;
    if (r !== g || r !== b) grey = false;
  }
  return { width, height, grey, data: grey ? rgb.subarray(0, n) : rgb };
}

/** Writes a planar image into `out` at `offset` with `channels` planes (grey is replicated to 3). */
export function copyPlanes(img: PlanarImage, channels: 1 | 3, out: Uint8Array, offset: number): void {
  const plane = img.width * img.height;
  if (img.grey) {
    for (let c = 0; c < channels; c++) out.set(img.data.subarray(0, plane), offset + c * plane);
  } else {
    if (channels !== 3) throw new CtfError('copyPlanes: a colour image cannot be written with 1 channel');
    out.set(img.data.subarray(0, 3 * plane), offset);
  }
}

/**
 * Bilinear resize of a planar image (C planes of h × w) to (outH, outW), sampling at pixel centres
 * (PyTorch's interpolate(mode='bilinear', align_corners=False) without antialiasing: shrinking by more
 * than 2× skips pixels, so prefer sources near the target size).
 */
export function resizeBilinear(
  src: Uint8Array,
  planes: number,
  h: number,
  w: number,
  outH: number,
  outW: number,
): Uint8Array {
  const out = new Uint8Array(planes * outH * outW);
  if (h === outH && w === outW) {
    out.set(src.subarray(0, out.length));
    return out;
  }
  const sy = h / outH,
    sx = w / outW;
  const x0s = new Int32Array(outW),
    x1s = new Int32Array(outW),
    fxs = new Float64Array(outW);
  for (let x = 0; x < outW; x++) {
    const fx = Math.max(0, (x + 0.5) * sx - 0.5);
    const x0 = Math.min(w - 1, Math.floor(fx));
    x0s[x] = x0;
    x1s[x] = Math.min(w - 1, x0 + 1);
    fxs[x] = fx - x0;
  }
  for (let c = 0; c < planes; c++) {
    const base = c * h * w,
      obase = c * outH * outW;
    for (let y = 0; y < outH; y++) {
      const fy = Math.max(0, (y + 0.5) * sy - 0.5);
      const y0 = Math.min(h - 1, Math.floor(fy)),
        y1 = Math.min(h - 1, y0 + 1),
        ty = fy - y0;
      const r0 = base + y0 * w,
        r1 = base + y1 * w;
      for (let x = 0; x < outW; x++) {
        const a = x0s[x]!,
          b = x1s[x]!,
          tx = fxs[x]!;
        const top = src[r0 + a]! + (src[r0 + b]! - src[r0 + a]!) * tx;
        const bot = src[r1 + a]! + (src[r1 + b]! - src[r1 + a]!) * tx;
        out[obase + y * outW + x] = Math.round(top + (bot - top) * ty);
      }
    }
  }
  return out;
}

/** (N, C, H, W) → (N, C, H + 2p, W + 2p) with `value` in the border. */
export function padImages(
  images: Uint8Array,
  n: number,
  c: number,
  h: number,
  w: number,
  p: number,
  value = 0,
): Uint8Array {
  if (p === 0) return images;
  const H = h + 2 * p,
    W = w + 2 * p;
  const out = new Uint8Array(n * c * H * W);
  if (value !== 0) out.fill(value);
  for (let plane = 0; plane < n * c; plane++) {
    const s = plane * h * w,
      d = plane * H * W + p * W + p;
    for (let y = 0; y < h; y++) out.set(images.subarray(s + y * w, s + (y + 1) * w), d + y * W);
  }
  return out;
}
