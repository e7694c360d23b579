// Elementwise ops: binary arithmetic with numpy broadcasting, scalar ops, activations and dropout.
// Kernels live in native/elementwise.cc; here are the shape rules and the tape entries.
import { CtfError } from '../../errors.js';
import { gradOf, record } from '../autograd.js';
import { kernel } from '../native.js';
import type { Rng } from '../rng.js';
import { Tensor, type Shape } from '../tensor.js';
import { coalesce, contiguousStrides, packGeometry } from './shape.js';

const enum BinOp { Add = 0, Sub = 1, Mul = 2, Div = 3 }
const enum UnOp { Neg = 0, AddScalar = 1, MulScalar = 2, Exp = 3, Log = 4, Sqrt = 5, Relu = 6, Silu = 7, Gelu = 8 }

type Binary = (op: BinOp, a: Float32Array, b: Float32Array, out: Float32Array, geom: Int32Array) => void;
type BinaryBackward = (op: BinOp, g: Float32Array, a: Float32Array, b: Float32Array,
  ga: Float32Array | null, gb: Float32Array | null, geom: Int32Array) => void;
type Unary = (op: UnOp, x: Float32Array, out: Float32Array, s: number) => void;
type UnaryBackward = (op: UnOp, x: Float32Array, y: Float32Array, g: Float32Array, gx: Float32Array, s: number) => void;
type Dropout = (x: Float32Array, out: Float32Array, p: number, seed: number, offset: number) => void;
type DropoutBackward = (g: Float32Array, gx: Float32Array, p: number, seed: number, offset: number) => void;
type Axpy = (alpha: number, x: Float32Array, y: Float32Array) => void;

const binaryKernel = kernel<Binary>('binary');
const binaryBackward = kernel<BinaryBackward>('binaryBackward');
const unaryKernel = kernel<Unary>('unary');
const unaryBackward = kernel<UnaryBackward>('unaryBackward');
const dropoutKernel = kernel<Dropout>('dropout');
const dropoutBackward = kernel<DropoutBackward>('dropoutBackward');

/** y += alpha · x (same length), in place. */
export const axpy = kernel<Axpy>('axpy');

const BIN_NAMES = ['add', 'sub', 'mul', 'div'] as const;

function expectF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (t.dtype !== 'f32') throw new CtfError(`${op}: ${t.describe()} is ${t.dtype}, expected f32`);
}

/** The numpy broadcast of two shapes (aligned at the right; a dim of 1 stretches). */
export function broadcastShapes(a: Tensor, b: Tensor, op: string): number[] {
  const n = Math.max(a.ndim, b.ndim);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a.shape[a.ndim - n + i] ?? 1, db = b.shape[b.ndim - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      throw new CtfError(
        `${op}: shapes do not broadcast: ${a.describe()} and ${b.describe()} (dim ${i - n}: ${da} vs ${db})`,
      );
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of t when read at the indices of outShape (0 on broadcast dims). */
function broadcastStrides(t: Tensor, outShape: Shape): number[] {
  const s = contiguousStrides(t.shape), n = outShape.length;
  return outShape.map((_, i) => {
    const j = t.ndim - n + i;
    return j < 0 || t.shape[j] === 1 ? 0 : s[j]!;
  });
}

function binary(op: BinOp, a: Tensor, b: Tensor): Tensor {
  const name = BIN_NAMES[op];
  expectF32(name, a, b);
  const outShape = broadcastShapes(a, b, name);
  const c = coalesce(outShape, [broadcastStrides(a, outShape), broadcastStrides(b, outShape)]);
  const geom = packGeometry(name, c.dims, c.strides);
  const out = new Tensor(new Float32Array(outShape.reduce((p, d) => p * d, 1)), outShape);
  if (out.size > 0) binaryKernel(op, a.f32, b.f32, out.f32, geom);
  return record(name, out, [a, b], (g) => {
    const ga = gradOf(a), gb = gradOf(b);
    if ((ga || gb) && out.size > 0) binaryBackward(op, g, a.f32, b.f32, ga, gb, geom);
  });
}

/** a + b with numpy broadcasting. */
export function add(a: Tensor, b: Tensor): Tensor { return binary(BinOp.Add, a, b); }
/** a - b with numpy broadcasting. */
export function sub(a: Tensor, b: Tensor): Tensor { return binary(BinOp.Sub, a, b); }
/** a · b (elementwise) with numpy broadcasting. */
export function mul(a: Tensor, b: Tensor): Tensor { return binary(BinOp.Mul, a, b); }
/** a / b (elementwise) with numpy broadcasting. */
export function div(a: Tensor, b: Tensor): Tensor { return binary(BinOp.Div, a, b); }

const UN_NAMES = ['neg', 'addScalar', 'mulScalar', 'exp', 'log', 'sqrt', 'relu', 'silu', 'gelu'] as const;

function unary(op: UnOp, x: Tensor, s = 0): Tensor {
  const name = UN_NAMES[op];
  expectF32(name, x);
  if (!Number.isFinite(s)) throw new CtfError(`${name}: scalar ${s} applied to ${x.describe()} is not finite`);
  const out = new Tensor(new Float32Array(x.size), x.shape);
  unaryKernel(op, x.f32, out.f32, s);
  return record(name, out, [x], (g) => {
    const gx = gradOf(x);
    if (gx) unaryBackward(op, x.f32, out.f32, g, gx, s);
  });
}

export function addScalar(x: Tensor, s: number): Tensor { return unary(UnOp.AddScalar, x, s); }
export function mulScalar(x: Tensor, s: number): Tensor { return unary(UnOp.MulScalar, x, s); }
export function neg(x: Tensor): Tensor { return unary(UnOp.Neg, x); }
export function exp(x: Tensor): Tensor { return unary(UnOp.Exp, x); }
export function log(x: Tensor): Tensor { return unary(UnOp.Log, x); }
export function sqrt(x: Tensor): Tensor { return unary(UnOp.Sqrt, x); }
export function relu(x: Tensor): Tensor { return unary(UnOp.Relu, x); }
/** x · sigmoid(x). */
export function silu(x: Tensor): Tensor { return unary(UnOp.Silu, x); }
/** Exact GELU, x · Φ(x) with the erf form (torch.nn.GELU() default, not the tanh approximation). */
export function gelu(x: Tensor): Tensor { return unary(UnOp.Gelu, x); }

/**
 * Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1-p), so the
 * expectation is unchanged. The mask comes from ctf::uniform_at(rng.seed(), i) and is regenerated in the
 * backward, never stored. Identity (x itself) when !training or p = 0. firstRow: x holds rows firstRow… of a
 * larger batch (a rank's share, rows along dim 0), and gets the mask bits of those rows of the whole batch.
 */
export function dropout(x: Tensor, p: number, rng: Rng, training: boolean, firstRow = 0): Tensor {
  expectF32('dropout', x);
  if (!(p >= 0 && p <= 1)) throw new CtfError(`dropout: probability ${p} for ${x.describe()} must be in [0, 1]`);
  if (!training || p === 0) return x;
  const seed = rng.seed(), offset = rowOffset(x, firstRow, 'dropout');
  const out = new Tensor(new Float32Array(x.size), x.shape);
  dropoutKernel(x.f32, out.f32, p, seed, offset);
  return record('dropout', out, [x], (g) => {
    const gx = gradOf(x);
    if (gx) dropoutBackward(g, gx, p, seed, offset);
  });
}


/** The element index of row `firstRow` (dim 0) of a batch whose rows are shaped like x's: firstRow · x.size / rows. */
export function rowOffset(x: Tensor, firstRow: number, op: string): number {
  if (!(Number.isSafeInteger(firstRow) && firstRow >= 0))
    throw new CtfError(`${op}: first row ${firstRow} of ${x.describe()} must be an integer ≥ 0`);
  if (firstRow === 0 || x.size === 0) return 0;
  return firstRow * (x.size / x.dim(0));
}
