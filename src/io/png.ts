// Images in and out: PNG (pngjs) and JPEG (jpeg-js) decoding into one plain layout, PNG encoding,
// and a grid of many images as one PNG. Pixels are always u8, row-major HWC (interleaved channels).
import { PNG, type ColorType } from 'pngjs';
import jpeg from 'jpeg-js';
import { CtfError } from '../errors.js';
import { readFileChecked, writeFileAtomic } from './atomic.js';

export interface DecodedImage {
  width: number;
  height: number;
  /**
   * The fewest channels that hold the image exactly: 1 when every pixel has R = G = B and is opaque,
   * 4 (RGBA) when any pixel is not fully opaque, else 3 (RGB). A grey PNG is 1, and so is an RGB PNG
   * or a JPEG whose pixels happen to be all grey.
   */
  channels: 1 | 3 | 4;
  data: Uint8Array;   // (height, width, channels)
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Refuses images above this many pixels (a wrong path, a hostile file, or a grid scaled too far), 8k × 8k. */
export const MAX_PIXELS = 64 * 1024 * 1024;
const MAX_FILE_BYTES = 512 * 1024 * 1024;

export function imageFormat(bytes: Uint8Array): 'png' | 'jpeg' | null {
  if (PNG_MAGIC.every((b, i) => bytes[i] === b)) return 'png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return null;
}

/** RGBA (h, w, 4) → the fewest channels that represent it exactly (see DecodedImage.channels). */
function reduceRgba(width: number, height: number, rgba: Uint8Array): DecodedImage {
  const n = width * height;
  let grey = true, opaque = true;
  for (let p = 0, i = 0; p < n; p++, i += 4) {
    if (rgba[i + 3] !== 255) { opaque = false; break; }
    if (grey && (rgba[i] !== rgba[i + 1] || rgba[i] !== rgba[i + 2])) grey = false;
  }
  if (!opaque) return { width, height, channels: 4, data: rgba };
  if (grey) {
    const out = new Uint8Array(n);
    for (let p = 0; p < n; p++) out[p] = rgba[4 * p]!;
    return { width, height, channels: 1, data: out };
  }
  const out = new Uint8Array(3 * n);
  for (let p = 0; p < n; p++) {
    out[3 * p] = rgba[4 * p]!; out[3 * p + 1] = rgba[4 * p + 1]!; out[3 * p + 2] = rgba[4 * p + 2]!;
  }
  return { width, height, channels: 3, data: out };
}

/** JPEG streams end with the EOI marker FF D9 (padding after it is tolerated); a cut file does not. */
function hasJpegEnd(bytes: Uint8Array): boolean {
  let end = bytes.length;
  while (end > 2 && bytes[end - 1] === 0) end--;   // zero padding some writers append
  for (let i = end - 2; i >= Math.max(0, end - 1024); i--) if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return true;
  return false;
}

/** Width and height from a PNG's IHDR chunk, which must come first (PNG spec §5.6); read before any pixel. */
export function pngHeaderSize(bytes: Uint8Array): { width: number; height: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 24 || String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR')
    throw new Error('no IHDR chunk after the signature: the file is truncated or not a PNG');
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Decodes PNG or JPEG bytes (recognised by their magic, not the name). `source` names the file in errors. */
export function decodeImage(bytes: Uint8Array, source: string): DecodedImage {
  const format = imageFormat(bytes);
  if (format === null) throw new CtfError(`${source}: not a PNG or JPEG image (unrecognised leading bytes)`);
  let width: number, height: number, rgba: Uint8Array;
  try {
    if (format === 'png') {
      // The header's size first: a small file can inflate to gigabytes (16000×16000 of one colour is 249 KB).
      const header = pngHeaderSize(bytes);
      if (header.width * header.height > MAX_PIXELS)
        throw new CtfError(`${source}: a ${header.width}×${header.height} PNG, expected at most 8192×8192 pixels`);
      // 16-bit is rescaled to 8
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      ({ width, height } = png);
      rgba = new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength);
    } else {
      if (!hasJpegEnd(bytes)) throw new Error('no end-of-image marker (FF D9): the file is truncated');
      const img = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: true,
        maxResolutionInMP: MAX_PIXELS / 1e6,
        maxMemoryUsageInMB: 1024,
      });
      ({ width, height } = img);
      rgba = img.data;
    }
  } catch (e) {
    if (e instanceof CtfError) throw e;
    throw new CtfError(`${source}: corrupt ${format === 'png' ? 'PNG' : 'JPEG'} image (${(e as Error).message})`);
  }
  if (width === 0 || height === 0 || rgba.length !== 4 * width * height)
    throw new CtfError(
      `${source}: corrupt ${format.toUpperCase()} image (decoded ${width}×${height} with ${rgba.length} bytes)`,
    );
  return reduceRgba(width, height, rgba);
}

export async function decodeImageFile(path: string): Promise<DecodedImage> {
  return decodeImage(await readFileChecked(path, { maxBytes: MAX_FILE_BYTES, what: 'image' }), path);
}

const COLOR_TYPE: Record<1 | 3 | 4, ColorType> = { 1: 0, 3: 2, 4: 6 };

/** Encodes (height, width, channels) u8 pixels as an 8-bit PNG (grey, RGB or RGBA). */
export function encodePng(img: DecodedImage): Buffer {
  const { width, height, channels, data } = img;
  if (data.length !== width * height * channels)
    throw new CtfError(
      `encodePng: ${data.length} bytes for ${width}×${height}×${channels} (${width * height * channels} expected)`,
    );
  const colorType = COLOR_TYPE[channels];
  // pngjs reads only width, height and data from the object it packs.
  const png = { width, height, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) } as PNG;
  return PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: channels === 4 });
}

export async function writePng(path: string, img: DecodedImage): Promise<void> {
  await writeFileAtomic(path, encodePng(img));
}

export interface GridOptions {
  cols?: number;       // tiles per row (default: ceil(sqrt(N)))
  pad?: number;        // pixels between tiles and around the border (default 2)
  padValue?: number;   // u8 value of the padding (default 255, white)
  scale?: number;      // integer nearest-neighbour enlargement of every tile, for viewing small images (default 1)
}

/** [-1, 1] → u8 with rounding and clamping, the inverse of the model-input scaling. */
export function floatToU8(x: number): number {
  const v = Math.round((x + 1) * 127.5);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** The size of imageGrid's picture of `cells` tiles of h0×w0 (before scaling): a caller checks it before the work. */
export function gridSize(cells: number, h0: number, w0: number, o: GridOptions = {}): {
  width: number; height: number; cols: number; pad: number;
} {
  const scale = o.scale ?? 1, pad = o.pad ?? 2;
  const cols = Math.max(1, o.cols ?? Math.ceil(Math.sqrt(cells)));
  const rows = Math.max(1, Math.ceil(cells / cols));
  return { width: cols * w0 * scale + (cols + 1) * pad, height: rows * h0 * scale + (rows + 1) * pad, cols, pad };
}

/**
 * Tiles N images (N, C, H, W) — u8, or floats in [-1, 1] — into one (rows·H + pads, cols·W + pads, C)
 * image, row-major over tiles. C must be 1 or 3. Tile i goes to row floor(i / cols), column i % cols;
 * an index of -1 in `order` leaves that cell empty (padding colour).
 */
export function imageGrid(
  images: Uint8Array | Float32Array,
  shape: readonly [number, number, number, number],
  o: GridOptions & { order?: number[] } = {},
): DecodedImage {
  const [n, c, h0, w0] = shape;
  const scale = o.scale ?? 1;
  if (!Number.isInteger(scale) || scale < 1)
    throw new CtfError(`imageGrid: scale must be a positive integer, got ${scale}`);
  const h = h0 * scale,
    w = w0 * scale;
  if (c !== 1 && c !== 3) throw new CtfError(`imageGrid: images have ${c} channels, expected 1 or 3`);
  if (images.length !== n * c * h0 * w0)
    throw new CtfError(
      `imageGrid: ${images.length} values for shape [${shape.join(', ')}] (${n * c * h0 * w0} expected)`,
    );
  const order = o.order ?? [...Array(n).keys()];
  const { width: W, height: H, cols, pad } = gridSize(order.length, h0, w0, o);
  if (W * H > MAX_PIXELS)
    throw new CtfError(`imageGrid: a ${W}×${H} grid (tiles ${w}×${h}, scale ${scale}), expected at most 8192×8192`);
  const out = new Uint8Array(W * H * c).fill(o.padValue ?? 255);
  const isFloat = images instanceof Float32Array;
  order.forEach((img, cell) => {
    if (img < 0) return;
    if (img >= n) throw new CtfError(`imageGrid: order names image ${img}, but there are ${n}`);
    const x0 = pad + (cell % cols) * (w + pad),
      y0 = pad + Math.floor(cell / cols) * (h + pad);
    for (let ch = 0; ch < c; ch++) {
      const plane = (img * c + ch) * h0 * w0;
      for (let y = 0; y < h; y++) {
        let o2 = ((y0 + y) * W + x0) * c + ch;
        const row = plane + Math.floor(y / scale) * w0;
        for (let x = 0; x < w; x++, o2 += c) {
          const v = images[row + Math.floor(x / scale)]!;
          out[o2] = isFloat ? floatToU8(v) : v;
        }
      }
    }
  });
  return { width: W, height: H, channels: c, data: out };
}

export async function writeImageGrid(
  path: string,
  images: Uint8Array | Float32Array,
  shape: readonly [number, number, number, number],
  o: GridOptions & { order?: number[] } = {},
): Promise<void> {
  await writePng(path, imageGrid(images, shape, o));
}
