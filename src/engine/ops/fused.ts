// Fused ops the GPT uses: SwiGLU over the packed w1|w3 projection, the class-prefixed token embedding,
// and an inference-only residual-add + RMSNorm for KV-cached decoding.
import { CtfError } from '../../errors.js';
import { gradOf, record } from '../autograd.js';
import { kernel } from '../native.js';
import { Tensor, expectDType, shapeStr } from '../tensor.js';

type SwigluForward = (a: Float32Array, offA: number, b: Float32Array, offB: number, ld: number, out: Float32Array, N: number, h: number) => void;
type SwigluBackward = (a: Float32Array, offA: number, b: Float32Array, offB: number, ld: number, g: Float32Array,
  da: Float32Array, db: Float32Array, N: number, h: number) => void;
type PrefixEmbedForward = (cls: Float32Array, nCls: number, classes: Int32Array, tok: Float32Array, nTok: number,
  tokens: Int32Array, out: Float32Array, B: number, L: number, D: number) => number;
type PrefixEmbedBackward = (dCls: Float32Array, classes: Int32Array, dTok: Float32Array, tokens: Int32Array,
  dout: Float32Array, B: number, L: number, D: number) => void;
type AddRmsNormRows = (h: Float32Array, delta: Float32Array, w: Float32Array, out: Float32Array, N: number, D: number, eps: number) => void;
type GptDecodeStep = (h: Float32Array, x: Float32Array, qkv: Float32Array, att: Float32Array, ab: Float32Array, g: Float32Array,
  logits: Float32Array, layers: Float32Array[], kCaches: Float32Array[], vCaches: Float32Array[], cos: Float32Array, sin: Float32Array,
  norm: Float32Array, output: Float32Array, N: number, D: number, H: number, hid: number, V: number, maxT: number, ldk: number,
  pos: number, eps: number) => void;

const swigluForward = kernel<SwigluForward>('swigluForward');
const swigluBackward = kernel<SwigluBackward>('swigluBackward');
const prefixEmbedForward = kernel<PrefixEmbedForward>('prefixEmbedForward');
const prefixEmbedBackward = kernel<PrefixEmbedBackward>('prefixEmbedBackward');
/**
 * A whole KV-cached decoding step of the GPT: every layer and the head, two threads, no allocation.
 * See native/fused.cc; src/models/kv-cache.ts is its caller.
 */
export const gptDecodeStep = kernel<GptDecodeStep>('gptDecodeStep');
/** Raw SwiGLU rows for inference: out (N, h) = silu(a)·b with rows at offA/offB + i·ld. No gradient. */
export const swigluForwardRows = swigluForward;
/** Inference only: h (N, D) += delta (unless empty); out = rmsNorm(h)·w. No gradient. */
export const addRmsNormRows = kernel<AddRmsNormRows>('addRmsNormRows');

const NONE = new Float32Array(0);

/** silu(a) · b for a, b of the same shape. */
export function swiglu(a: Tensor, b: Tensor): Tensor {
  if (shapeStr(a.shape) !== shapeStr(b.shape)) throw new CtfError(`swiglu: ${a.describe()} and ${b.describe()} must have the same shape`);
  const h = a.ndim === 0 ? 1 : a.dim(-1), N = a.size / Math.max(h, 1);
  const out = new Tensor(new Float32Array(a.size), a.shape);
  swigluForward(a.f32, 0, b.f32, 0, h, out.f32, N, h);
  return record('swiglu', out, [a, b], (g) => {
    const da = gradOf(a), db = gradOf(b);
    swigluBackward(a.f32, 0, b.f32, 0, h, g, da ?? NONE, db ?? NONE, N, h);
  });
}

/** ab (..., 2h) holding [a | b] along the last axis (the fused w1|w3 projection) -> silu(a) · b (..., h). */
export function swigluPacked(ab: Tensor): Tensor {
  if (ab.ndim < 1 || ab.dim(-1) % 2 !== 0) throw new CtfError(`swigluPacked: ${ab.describe()} needs an even last dimension [a | b]`);
  const h2 = ab.dim(-1), h = h2 / 2, N = ab.size / h2;
  const out = new Tensor(new Float32Array(N * h), [...ab.shape.slice(0, -1), h]);
  const x = ab.f32;
  swigluForward(x, 0, x, h, h2, out.f32, N, h);
  return record('swigluPacked', out, [ab], (g) => {
    const d = gradOf(ab);
    if (d) swigluBackward(x, 0, x, h, h2, g, d, d, N, h);
  });
}

/**
 * The GPT's input embedding: classes (B) and tokens (B, L-1), both i32 -> (B, L, D) with row 0 of each
 * sequence clsTable[class] and row i tokTable[tokens[i-1]]. Backward scatter-adds into both tables.
 */
export function prefixEmbedding(clsTable: Tensor, classes: Tensor, tokTable: Tensor, tokens: Tensor): Tensor {
  expectDType(classes, 'i32', 'prefixEmbedding');
  expectDType(tokens, 'i32', 'prefixEmbedding');
  if (clsTable.ndim !== 2 || tokTable.ndim !== 2 || clsTable.dim(1) !== tokTable.dim(1))
    throw new CtfError(`prefixEmbedding: tables ${clsTable.describe()} and ${tokTable.describe()} must be (rows, D) with the same D`);
  if (classes.ndim !== 1 || tokens.ndim !== 2 || tokens.dim(0) !== classes.dim(0))
    throw new CtfError(`prefixEmbedding: classes ${classes.describe()} must be (B) and tokens ${tokens.describe()} (B, L-1)`);
  const B = classes.dim(0), L = tokens.dim(1) + 1, D = clsTable.dim(1);
  const nCls = clsTable.dim(0), nTok = tokTable.dim(0);
  const out = new Tensor(new Float32Array(B * L * D), [B, L, D]);
  const bad = prefixEmbedForward(clsTable.f32, nCls, classes.i32, tokTable.f32, nTok, tokens.i32, out.f32, B, L, D);
  if (bad >= 0) {
    if (bad < B) throw new CtfError(`prefixEmbedding: class ${classes.i32[bad]} at batch row ${bad} outside [0, ${nCls})`);
    const i = bad - B;
    throw new CtfError(`prefixEmbedding: token ${tokens.i32[i]} at (${Math.floor(i / (L - 1))}, ${i % (L - 1)}) outside [0, ${nTok})`);
  }
  return record('prefixEmbedding', out, [clsTable, tokTable], (g) => {
    const dCls = gradOf(clsTable), dTok = gradOf(tokTable);
    prefixEmbedBackward(dCls ?? NONE, classes.i32, dTok ?? NONE, tokens.i32, g, B, L, D);
  });
}
