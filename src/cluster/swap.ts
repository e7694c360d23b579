// The paper's key observation as an operation: replace every token by a random *other* member of its
// cluster. With k-means clusters the decoded image barely changes; with random clusters it falls apart.
import { CtfError } from '../errors.js';
import type { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';
import type { CoarseMap } from './coarse-map.js';

/**
 * tokens (any shape, fine ids) -> the same shape, each id replaced by a uniformly drawn other member of
 * its cluster (an id alone in its cluster stays). One draw per token, in order, from rng.
 */
export function swapWithinClusters(
  tokens: Int32Array,
  map: Pick<CoarseMap, 'v' | 'fineToCoarse' | 'members'>,
  rng: Rng,
): Int32Array {
  const out = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (!(t >= 0 && t < map.v))
      throw new CtfError(`swapWithinClusters: token ${i} is ${t}, outside the map's [0, ${map.v})`);
    const members = map.members[map.fineToCoarse[t]!]!;
    const r = rng.int(Math.max(1, members.length - 1));
    if (members.length === 1) {
      out[i] = t;
      continue;
    }
    // Members are ascending: skip t's own slot.
    const pick = members[r]! < t ? members[r]! : members[r + 1]!;
    out[i] = pick;
  }
  return out;
}

/** What the demo needs from a tokenizer (VqTokenizer fits): encode+decode, and decode of given tokens. */
export interface TokenCodec {
  readonly grid: number;                                          // tokens per side
  reconstruct(x: Tensor): { recon: Tensor; index: Int32Array };   // images (B, C, H, W) -> x̂, tokens (B·g·g)
  decode(tokens: Tensor): Tensor;                                 // i32 (B, g, g) -> images (B, C, H, W)
}

export interface SwapDemoRow {
  name: string;              // "original", "reconstruction", then the maps' names
  psnrVsOriginal: number;    // mean over images, dB on the [0, 1] pixel scale (pixels clamped to [-1, 1] first)
  psnrVsRecon: number;
  tokensChanged: number;     // fraction of tokens that differ from the encoded ones
}

export interface SwapDemo {
  images: Float32Array;                      // (rows·B, C, H, W) in [-1, 1], row-major: one row per entry of rows
  shape: [number, number, number, number];
  rows: SwapDemoRow[];
}

const clamp1 = (v: number): number => Math.min(1, Math.max(-1, v));

/** Mean over images of 10·log10(1 / MSE), pixels clamped to [-1, 1] and mapped to [0, 1]; capped at 100 dB. */
export function meanPsnr(a: Float32Array, b: Float32Array, B: number): number {
  const n = a.length / B;
  let total = 0;
  for (let i = 0; i < B; i++) {
    let se = 0;
    for (let k = i * n; k < (i + 1) * n; k++) {
      const d = (clamp1(a[k]!) - clamp1(b[k]!)) / 2;
      se += d * d;
    }
    total += 10 * Math.log10(1 / Math.max(se / n, 1e-10));
  }
  return total / B;
}

/**
 * Encodes images x (B, C, H, W), then decodes the tokens as they are and after swapWithinClusters with
 * each map (rng.split(name) per map). Rows: original, reconstruction, one per map.
 */
export function swapDemo(codec: TokenCodec, x: Tensor, maps: { name: string; map: CoarseMap }[], rng: Rng): SwapDemo {
  if (x.ndim !== 4) throw new CtfError(`swapDemo: images ${x.describe()} must be (B, C, H, W)`);
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const g = codec.grid;
  const { recon, index } = codec.reconstruct(x);
  const decoded: { name: string; images: Float32Array; tokens: Int32Array }[] = [
    { name: 'original', images: x.f32, tokens: index },
    { name: 'reconstruction', images: recon.f32, tokens: index },
  ];
  for (const { name, map } of maps) {
    const tokens = swapWithinClusters(index, map, rng.split(name));
    decoded.push({ name, images: codec.decode(new Tensor(tokens, [B, g, g])).f32, tokens });
  }
  const images = new Float32Array(decoded.length * x.size);
  const rows = decoded.map((d, r) => {
    images.set(d.images, r * x.size);
    let changed = 0;
    for (let i = 0; i < index.length; i++) changed += Number(d.tokens[i] !== index[i]);
    return {
      name: d.name, psnrVsOriginal: meanPsnr(d.images, x.f32, B), psnrVsRecon: meanPsnr(d.images, recon.f32, B),
      tokensChanged: changed / index.length,
    };
  });
  return { images, shape: [decoded.length * B, C, H, W], rows };
}
