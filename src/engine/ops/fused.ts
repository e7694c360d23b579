// Fused transformer ops with explicit backwards in the manner of llm.c: SwiGLU (also over a packed w1|w3
// projection), the class-prefixed token embedding, the two halves of a transformer block as single ops
// (attentionBlock: wqkv → RoPE attention → wo; swigluFfn: w1|w3 → SwiGLU → w2) and the residual add with
// dropout. (A GPT's inference passes belong to the model: src/models/gpt-native.ts.)
import { CtfError } from '../../errors.js';
import { gradOf, record } from '../autograd.js';
import { kernel } from '../native.js';
import type { Rng } from '../rng.js';
import { Tensor, expectDType, shapeStr } from '../tensor.js';
import { attentionBackward, attentionForward } from './attention.js';
import { rowOffset } from './elementwise.js';
import { sgemm } from './matmul.js';
import { ropeQkvInPlace, ropeRows, type RopeTable } from './rope.js';

type SwigluForward = (a: Float32Array, offA: number, b: Float32Array, offB: number, ld: number, out: Float32Array,
  N: number, h: number) => void;
type SwigluBackward = (a: Float32Array, offA: number, b: Float32Array, offB: number, ld: number, g: Float32Array,
  da: Float32Array, db: Float32Array, N: number, h: number, accumulate: boolean) => void;
type PrefixEmbedForward = (cls: Float32Array, nCls: number, classes: Int32Array, tok: Float32Array, nTok: number,
  tokens: Int32Array, out: Float32Array, B: number, L: number, D: number) => number;
type PrefixEmbedBackward = (dCls: Float32Array, classes: Int32Array, dTok: Float32Array, tokens: Int32Array,
  dout: Float32Array, B: number, L: number, D: number) => void;
type AddDropoutForward = (h: Float32Array, x: Float32Array, out: Float32Array, p: number, seed: number,
  offset: number) => void;
type AddDropoutBackward = (g: Float32Array, gx: Float32Array, p: number, seed: number, accumulate: boolean,
  offset: number) => void;

const swigluForward = kernel<SwigluForward>('swigluForward');
const addDropoutForward = kernel<AddDropoutForward>('addDropoutForward');
const addDropoutBackward = kernel<AddDropoutBackward>('addDropoutBackward');
const swigluBackward = kernel<SwigluBackward>('swigluBackward');
const prefixEmbedForward = kernel<PrefixEmbedForward>('prefixEmbedForward');
const prefixEmbedBackward = kernel<PrefixEmbedBackward>('prefixEmbedBackward');

const NONE = new Float32Array(0);

/** silu(a) · b for a, b of the same shape. */
export function swiglu(a: Tensor, b: Tensor): Tensor {
  if (shapeStr(a.shape) !== shapeStr(b.shape))
    throw new CtfError(`swiglu: ${a.describe()} and ${b.describe()} must have the same shape`);
  const h = a.ndim === 0 ? 1 : a.dim(-1), N = a.size / Math.max(h, 1);
  const out = new Tensor(new Float32Array(a.size), a.shape);
  swigluForward(a.f32, 0, b.f32, 0, h, out.f32, N, h);
  return record('swiglu', out, [a, b], (g) => {
    const da = gradOf(a), db = gradOf(b);
    swigluBackward(a.f32, 0, b.f32, 0, h, g, da ?? NONE, db ?? NONE, N, h, true);
  });
}

/** ab (..., 2h) holding [a | b] along the last axis (the fused w1|w3 projection) -> silu(a) · b (..., h). */
export function swigluPacked(ab: Tensor): Tensor {
  if (ab.ndim < 1 || ab.dim(-1) % 2 !== 0)
    throw new CtfError(`swigluPacked: ${ab.describe()} needs an even last dimension [a | b]`);
  const h2 = ab.dim(-1), h = h2 / 2, N = ab.size / h2;
  const out = new Tensor(new Float32Array(N * h), [...ab.shape.slice(0, -1), h]);
  const x = ab.f32;
  swigluForward(x, 0, x, h, h2, out.f32, N, h);
  return record('swigluPacked', out, [ab], (g) => {
    const d = gradOf(ab);
    if (d) swigluBackward(x, 0, x, h, h2, g, d, d, N, h, true);
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
    throw new CtfError(`prefixEmbedding: tables ${clsTable.describe()} and ${tokTable.describe()} must be (rows, D) ` +
      'with the same D');
  if (classes.ndim !== 1 || tokens.ndim !== 2 || tokens.dim(0) !== classes.dim(0))
    throw new CtfError(`prefixEmbedding: classes ${classes.describe()} must be (B) and tokens ${tokens.describe()} ` +
      '(B, L-1)');
  const B = classes.dim(0), L = tokens.dim(1) + 1, D = clsTable.dim(1);
  const nCls = clsTable.dim(0), nTok = tokTable.dim(0);
  const out = new Tensor(new Float32Array(B * L * D), [B, L, D]);
  const bad = prefixEmbedForward(clsTable.f32, nCls, classes.i32, tokTable.f32, nTok, tokens.i32, out.f32, B, L, D);
  if (bad >= 0) {
    if (bad < B)
      throw new CtfError(`prefixEmbedding: class ${classes.i32[bad]} at batch row ${bad} outside [0, ${nCls})`);
    const i = bad - B;
    const at = `(${Math.floor(i / (L - 1))}, ${i % (L - 1)})`;
    throw new CtfError(`prefixEmbedding: token ${tokens.i32[i]} at ${at} outside [0, ${nTok})`);
  }
  return record('prefixEmbedding', out, [clsTable, tokTable], (g) => {
    const dCls = gradOf(clsTable), dTok = gradOf(tokTable);
    prefixEmbedBackward(dCls ?? NONE, classes.i32, dTok ?? NONE, tokens.i32, g, B, L, D);
  });
}

/**
 * Reusable buffers for the blocks' internals (activations kept for the backward, gradient scratch),
 * never handed out as tensors. A fresh multi-MB Float32Array costs a page fault per 4 KiB when first
 * written (~10 ms for the FFN's 12 MB here); these stay resident across steps. Every user overwrites a
 * buffer completely before reading it.
 */
class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private retained = 0;                 // floats held in free lists
  private static readonly CAP = 2 ** 27;  // 512 MiB: beyond that, returned buffers are left to the GC

  take(n: number): Float32Array {
    const b = this.free.get(n)?.pop();
    if (!b) return new Float32Array(n);
    this.retained -= n;
    return b;
  }

  give(...bufs: Float32Array[]): void {
    for (const b of bufs) {
      if (this.retained + b.length > BufferPool.CAP) continue;
      const list = this.free.get(b.length) ?? [];
      list.push(b);
      this.free.set(b.length, list);
      this.retained += b.length;
    }
  }
}
const pool = new BufferPool();

function checkLinear(op: string, x: Tensor, w: Tensor, rows: number, cols: number): void {
  if (w.ndim !== 2 || w.dim(0) !== rows || w.dim(1) !== cols)
    throw new CtfError(`${op}: weight ${w.describe()} must be (${rows}, ${cols}) for input ${x.describe()}`);
}

export interface AttentionBlockOptions {
  heads: number;
  causal: boolean;
  /** Rotates q and k with rows 0..T-1 of this table (e.g. ropeTable2d). */
  rope?: RopeTable;
}

/**
 * The attention half of a transformer block without its norm and residual: x (B, T, D) -> out (B, T, D)
 * = wo · attention(rope(q), rope(k), v) with q|k|v = wqkv · x (wqkv (3D, D) rows q, k, v; wo (D, D)).
 * Same function as linear → selfAttentionQkv → linear, with its internals (qkv, attention output and
 * their gradients) in pooled buffers instead of tensors.
 */
export function attentionBlock(x: Tensor, wqkv: Tensor, wo: Tensor, o: AttentionBlockOptions): Tensor {
  if (x.ndim !== 3) throw new CtfError(`attentionBlock: input ${x.describe()} must be (B, T, D)`);
  const [B, T, D] = x.shape as [number, number, number];
  const H = o.heads, hd = D / H, N = B * T, D3 = 3 * D;
  if (!Number.isInteger(hd) || hd % 2 !== 0)
    throw new CtfError(`attentionBlock: dim ${D} does not split into ${H} heads of even size`);
  checkLinear('attentionBlock', x, wqkv, D3, D);
  checkLinear('attentionBlock', x, wo, D, D);
  let cos: Float32Array = NONE, sin: Float32Array = NONE;
  if (o.rope) {
    if (o.rope.headDim !== hd)
      throw new CtfError(`attentionBlock: rope table is for head dim ${o.rope.headDim}, heads here have ${hd}`);
    ({ cos, sin } = ropeRows(o.rope, 0, T));
  }
  const scale = 1 / Math.sqrt(hd);
  const X = x.f32, Wqkv = wqkv.f32, Wo = wo.f32;
  const qkv = pool.take(N * D3);  // (N, 3D): q scaled and rotated, k rotated, v; kept for the backward
  const att = pool.take(N * D);   // (N, D) attention output, kept for dWo
  const lse = new Float32Array(B * H * T);
  sgemm(false, true, N, D3, D, 1, X, 0, D, Wqkv, 0, D, 0, qkv, 0, D3);
  // Rotating and scaling once here lets the attention kernel read q, k, v (and write att) in place.
  ropeQkvInPlace(qkv, cos, sin, N, T, H, hd, scale, false);
  attentionForward(qkv, 0, qkv, D, qkv, 2 * D, T * D3, hd, D3, att, 0, T * D, hd, D, lse, NONE, 0, NONE, NONE,
    B, H, T, hd, o.causal, 1);
  const out = new Tensor(new Float32Array(N * D), [B, T, D]);
  sgemm(false, true, N, D, D, 1, att, 0, D, Wo, 0, D, 0, out.f32, 0, D);
  const recorded = record('attentionBlock', out, [x, wqkv, wo], (dOut) => {
    const dx = gradOf(x), dWqkv = gradOf(wqkv), dWo = gradOf(wo);
    if (dWo) sgemm(true, false, D, D, N, 1, dOut, 0, D, att, 0, D, 1, dWo, 0, D);  // dWo += dOutᵀ · att
    if (dx || dWqkv) {
      const dAtt = pool.take(N * D), dqkv = pool.take(N * D3);
      sgemm(false, false, N, D, D, 1, dOut, 0, D, Wo, 0, D, 0, dAtt, 0, D);          // dAtt = dOut · wo
      attentionBackward(qkv, 0, qkv, D, qkv, 2 * D, T * D3, hd, D3, dAtt, 0, T * D, hd, D, lse, NONE, 0,
        dqkv, dqkv, dqkv, NONE, NONE, B, H, T, hd, 1, o.causal, false);  // dqkv overwritten
      ropeQkvInPlace(dqkv, cos, sin, N, T, H, hd, scale, true);  // back through rotation and scale
      if (dWqkv) sgemm(true, false, D3, D, N, 1, dqkv, 0, D3, X, 0, D, 1, dWqkv, 0, D);  // dWqkv += dqkvᵀ · x
      if (dx) sgemm(false, false, N, D, D3, 1, dqkv, 0, D3, Wqkv, 0, D, 1, dx, 0, D);    // dx += dqkv · wqkv
      pool.give(dAtt, dqkv);
    }
    pool.give(qkv, att);
  });
  if (!recorded.requiresGrad) pool.give(qkv, att);  // nothing recorded (no-grad scope): the backward never runs
  return recorded;
}

/**
 * The FFN half of a LlamaGen block without its norm and residual: x (..., D) -> w2 · (silu(w1 x) · w3 x)
 * with w13 (2·hidden, D) = [w1; w3] and w2 (D, hidden). The hidden activations and their gradients
 * live in pooled buffers.
 */
export function swigluFfn(x: Tensor, w13: Tensor, w2: Tensor): Tensor {
  const D = x.dim(-1), N = x.size / D;
  if (w13.ndim !== 2 || w13.dim(0) % 2 !== 0)
    throw new CtfError(`swigluFfn: w13 ${w13.describe()} must be (2·hidden, ${D})`);
  const h = w13.dim(0) / 2, h2 = 2 * h;
  checkLinear('swigluFfn', x, w13, h2, D);
  checkLinear('swigluFfn', x, w2, D, h);
  const X = x.f32, W13 = w13.f32, W2 = w2.f32;
  const ab = pool.take(N * h2);  // (N, 2h) = [w1 x | w3 x], kept for the backward
  const g = pool.take(N * h);    // (N, h) = silu(w1 x) · w3 x, kept for dW2
  sgemm(false, true, N, h2, D, 1, X, 0, D, W13, 0, D, 0, ab, 0, h2);
  swigluForward(ab, 0, ab, h, h2, g, N, h);
  const out = new Tensor(new Float32Array(N * D), x.shape);
  sgemm(false, true, N, D, h, 1, g, 0, h, W2, 0, h, 0, out.f32, 0, D);
  const recorded = record('swigluFfn', out, [x, w13, w2], (dOut) => {
    const dx = gradOf(x), dW13 = gradOf(w13), dW2 = gradOf(w2);
    const dG = pool.take(N * h);
    sgemm(false, false, N, h, D, 1, dOut, 0, D, W2, 0, h, 0, dG, 0, h);              // dG = dOut · w2
    if (dW2) sgemm(true, false, D, h, N, 1, dOut, 0, D, g, 0, h, 1, dW2, 0, h);     // dW2 += dOutᵀ · g
    if (dx || dW13) {
      const dAB = pool.take(N * h2);
      swigluBackward(ab, 0, ab, h, h2, dG, dAB, dAB, N, h, false);                     // dAB overwritten
      if (dW13) sgemm(true, false, h2, D, N, 1, dAB, 0, h2, X, 0, D, 1, dW13, 0, D);  // dW13 += dABᵀ · x
      if (dx) sgemm(false, false, N, D, h2, 1, dAB, 0, h2, W13, 0, D, 1, dx, 0, D);   // dx += dAB · w13
      pool.give(dAB);
    }
    pool.give(dG, ab, g);
  });
  if (!recorded.requiresGrad) pool.give(ab, g);
  return recorded;
}

/**
 * The residual connection h + dropout(x, p) in one pass (p = 0 or !training: h + x). Same shapes only.
 * The backward hands the incoming gradient to h as is (adopting it when h has none yet, as
 * crossEntropy does) and writes x's gradient through the regenerated mask. firstRow: as for dropout, the mask bits
 * of rows firstRow… of a larger batch.
 */
export function addDropout(h: Tensor, x: Tensor, p: number, rng: Rng | undefined, training: boolean,
  firstRow = 0): Tensor {
  if (shapeStr(h.shape) !== shapeStr(x.shape))
    throw new CtfError(`addDropout: ${h.describe()} and ${x.describe()} must have the same shape`);
  if (!(p >= 0 && p < 1)) throw new CtfError(`addDropout: probability ${p} must be in [0, 1)`);
  const q = training ? p : 0;
  if (q > 0 && !rng) throw new CtfError('addDropout: dropout in training needs an rng');
  const seed = q > 0 ? rng!.seed() : 0, offset = rowOffset(x, firstRow, 'addDropout');
  const out = new Tensor(new Float32Array(h.size), h.shape);
  addDropoutForward(h.f32, x.f32, out.f32, q, seed, offset);
  return record('addDropout', out, [h, x], (g) => {
    if (x.requiresGrad) {
      const fresh = x.grad === null;
      if (fresh) x.grad = new Float32Array(x.size);
      addDropoutBackward(g, x.grad!, q, seed, !fresh, offset);
    }
    if (h.requiresGrad) {
      // g is this output's finished gradient, released by the tape once this backward returns.
      if (h.grad === null && h !== x) h.grad = g;
      else addDropoutBackward(g, h.grad ?? (h.grad = new Float32Array(h.size)), 0, 0, true, 0);
    }
  });
}
