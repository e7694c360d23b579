// Scaled dot-product attention (scale 1/sqrt(hd)), causal or bidirectional, optional additive mask.
// Two entry points over one native kernel that takes strided views:
//   attention(q, k, v)            q, k, v (B, H, T, hd) -> (B, H, T, hd)          (the generic op)
//   selfAttentionQkv(qkv, ...)    qkv (B, T, 3·H·hd) -> (B, T, H·hd) with fused RoPE (what the GPT uses:
//                                 reads q/k/v straight out of the wqkv projection, no permutes)
// The forward keeps each row's log-sum-exp (B, H, T); the backward recomputes the probabilities.
import { CtfError } from '../../errors.js';
import { gradOf, record } from '../autograd.js';
import { kernel } from '../native.js';
import { Tensor, shapeStr } from '../tensor.js';
import { ropeRows, type RopeTable } from './rope.js';

type AttentionForward = (q: Float32Array, offQ: number, k: Float32Array, offK: number, v: Float32Array, offV: number,
  sb: number, sh: number, st: number, out: Float32Array, offOut: number, osb: number, osh: number, ost: number,
  lse: Float32Array, mask: Float32Array, maskSb: number, cos: Float32Array, sin: Float32Array,
  B: number, H: number, T: number, hd: number, causal: boolean, scale: number) => void;
type AttentionBackward = (q: Float32Array, offQ: number, k: Float32Array, offK: number, v: Float32Array, offV: number,
  sb: number, sh: number, st: number, dout: Float32Array, offDout: number, osb: number, osh: number, ost: number,
  lse: Float32Array, mask: Float32Array, maskSb: number, dq: Float32Array, dk: Float32Array, dv: Float32Array,
  cos: Float32Array, sin: Float32Array, B: number, H: number, T: number, hd: number, scale: number, causal: boolean,
  accumulate: boolean) => void;
type AttentionDecode = (
  qkv: Float32Array,
  kCache: Float32Array,
  vCache: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  out: Float32Array,
  N: number,
  H: number,
  hd: number,
  maxT: number,
  ldk: number,
  pos: number,
  scale: number,
) => void;

/** Raw kernels (strided views; see native/attention.cc), also used by the fused attention block in fused.ts. */
export const attentionForward = kernel<AttentionForward>('attentionForward');
export const attentionBackward = kernel<AttentionBackward>('attentionBackward');
/**
 * One decoding step over a KV cache: keys transposed (N, H, hd, ldk ≥ maxT rounded up to 16), values
 * (N, H, maxT, hd); see native/attention.cc. Used by src/models/kv-cache.ts.
 */
export const attentionDecode = kernel<AttentionDecode>('attentionDecode');

const NONE = new Float32Array(0);

export interface AttentionOptions {
  causal: boolean;
  /** Additive mask (T, T) or (B, 1, T, T), added to the scaled scores; -Infinity blocks. */
  mask?: Tensor;
}

function maskArgs(mask: Tensor | undefined, B: number, T: number, where: string): [Float32Array, number] {
  if (!mask) return [NONE, 0];
  const s = mask.shape;
  if (s.length === 2 && s[0] === T && s[1] === T) return [mask.f32, 0];
  if (s.length === 4 && s[0] === B && s[1] === 1 && s[2] === T && s[3] === T) return [mask.f32, T * T];
  throw new CtfError(`${where}: mask ${mask.describe()} must be (${T}, ${T}) or (${B}, 1, ${T}, ${T})`);
}

/** q, k, v (B, H, T, hd) -> (B, H, T, hd). */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
  if (q.ndim !== 4 || shapeStr(k.shape) !== shapeStr(q.shape) || shapeStr(v.shape) !== shapeStr(q.shape))
    throw new CtfError(
      `attention: q, k, v must all be (B, H, T, hd); got ${q.describe()}, ${k.describe()}, ${v.describe()}`,
    );
  const [B, H, T, hd] = q.shape as [number, number, number, number];
  const [mask, maskSb] = maskArgs(o.mask, B, T, 'attention');
  const scale = 1 / Math.sqrt(hd);
  const sb = H * T * hd, sh = T * hd, st = hd;
  const out = new Tensor(new Float32Array(q.size), q.shape);
  const lse = new Float32Array(B * H * T);
  attentionForward(q.f32, 0, k.f32, 0, v.f32, 0, sb, sh, st, out.f32, 0, sb, sh, st, lse, mask, maskSb, NONE, NONE,
    B, H, T, hd, o.causal, scale);
  return record('attention', out, [q, k, v], (g) => {
    const dq = gradOf(q) ?? NONE, dk = gradOf(k) ?? NONE, dv = gradOf(v) ?? NONE;
    attentionBackward(
      q.f32,
      0,
      k.f32,
      0,
      v.f32,
      0,
      sb,
      sh,
      st,
      g,
      0,
      sb,
      sh,
      st,
      lse,
      mask,
      maskSb,
      dq,
      dk,
      dv,
      NONE,
      NONE,
      B,
      H,
      T,
      hd,
      scale,
      o.causal,
      true,
    );
  });
}

export interface SelfAttentionOptions {
  heads: number;
  causal: boolean;
  /** Rotates q and k with rows 0..T-1 of this table (e.g. ropeTable2d). */
  rope?: RopeTable;
  mask?: Tensor;
}

/**
 * Self-attention on a fused projection: qkv (B, T, 3·D) with columns q | k | v, head h at h·hd within
 * each, -> (B, T, D) with head h at columns h·hd (ready for the output projection).
 */
export function selfAttentionQkv(qkv: Tensor, o: SelfAttentionOptions): Tensor {
  if (qkv.ndim !== 3 || qkv.dim(2) % (3 * o.heads) !== 0)
    throw new CtfError(`selfAttentionQkv: ${qkv.describe()} must be (B, T, 3·heads·hd) with heads = ${o.heads}`);
  const [B, T, D3] = qkv.shape as [number, number, number];
  const D = D3 / 3, H = o.heads, hd = D / H;
  let cos: Float32Array = NONE, sin: Float32Array = NONE;
  if (o.rope) {
    if (o.rope.headDim !== hd)
      throw new CtfError(`selfAttentionQkv: rope table is for head dim ${o.rope.headDim}, heads here have ${hd}`);
    ({ cos, sin } = ropeRows(o.rope, 0, T));
  }
  const [mask, maskSb] = maskArgs(o.mask, B, T, 'selfAttentionQkv');
  const scale = 1 / Math.sqrt(hd);
  const out = new Tensor(new Float32Array(B * T * D), [B, T, D]);
  const lse = new Float32Array(B * H * T);
  const x = qkv.f32;
  attentionForward(x, 0, x, D, x, 2 * D, T * D3, hd, D3, out.f32, 0, T * D, hd, D, lse, mask, maskSb, cos, sin,
    B, H, T, hd, o.causal, scale);
  return record('selfAttentionQkv', out, [qkv], (g) => {
    const dx = gradOf(qkv);
    if (dx)
      attentionBackward(
        x,
        0,
        x,
        D,
        x,
        2 * D,
        T * D3,
        hd,
        D3,
        g,
        0,
        T * D,
        hd,
        D,
        lse,
        mask,
        maskSb,
        dx,
        dx,
        dx,
        cos,
        sin,
        B,
        H,
        T,
        hd,
        scale,
        o.causal,
        true,
      );
  });
}
