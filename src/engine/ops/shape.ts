// Shape ops: reshape (a view on the same buffer), transpose/permute (a native strided copy), slice and
// concat along one axis (native block copies). They work on f32 and i32 tensors alike (token ids too). Also the stride
// bookkeeping that the broadcasting and reduction ops share: contiguous strides and dimension coalescing.
import { CtfError } from '../../errors.js';
import { gradOf, record } from '../autograd.js';
import { kernel } from '../native.js';
import { Tensor, sizeOf, shapeStr, type Shape } from '../tensor.js';

type StridedCopy = (src: Float32Array, dst: Float32Array, geom: Int32Array, alpha: number, accumulate: boolean) => void;
type CopyBlocks = (src: Float32Array, srcOff: number, srcStride: number, dst: Float32Array, dstOff: number,
  dstStride: number, rows: number, rowLen: number, accumulate: boolean) => void;

const stridedCopyKernel = kernel<StridedCopy>('stridedCopy');
const copyBlocks = kernel<CopyBlocks>('copyBlocks');

/** Native kernels accept up to this many dimensions after coalescing. */
export const MAX_DIMS = 8;

/** Row-major element strides of a contiguous tensor of this shape. */
export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]!; }
  return s;
}

/**
 * Simplifies an iteration over dims where each of several buffers is addressed by its own strides: drops
 * size-1 dims and merges neighbours that every buffer walks contiguously (stride[i] = stride[i+1]·dim[i+1]).
 * Always returns at least one dim (a single element iterates as dims [1], strides 0).
 */
export function coalesce(
  dims: readonly number[],
  strides: readonly (readonly number[])[],
): { dims: number[]; strides: number[][] } {
  const d: number[] = [];
  const s: number[][] = strides.map(() => []);
  for (let i = 0; i < dims.length; i++) {
    if (dims[i] === 1) continue;
    const last = d.length - 1;
    if (last >= 0 && strides.every((st, k) => st[i]! * dims[i]! === s[k]![last])) {
      d[last] = d[last]! * dims[i]!;
      strides.forEach((st, k) => {
        s[k]![last] = st[i]!;
      });
    } else {
      d.push(dims[i]!);
      strides.forEach((st, k) => s[k]!.push(st[i]!));
    }
  }
  if (d.length === 0) return { dims: [1], strides: strides.map(() => [0]) };
  return { dims: d, strides: s };
}

/** Packs [n, dims..., strides0..., strides1..., ...] for a native kernel; throws past MAX_DIMS. */
export function packGeometry(op: string, dims: readonly number[], strides: readonly (readonly number[])[]): Int32Array {
  if (dims.length > MAX_DIMS)
    throw new CtfError(
      `${op}: the layout needs ${dims.length} dimensions after merging contiguous ones; kernels support ${MAX_DIMS}`,
    );
  return Int32Array.from([dims.length, ...dims, ...strides.flat()]);
}

/**
 * dst (contiguous, shape dims) = alpha · src read at Σ idx·srcStrides (or += with accumulate). Zero strides
 * broadcast; a permutation of strides transposes.
 */
export function stridedCopyInto(
  op: string,
  src: Float32Array,
  dst: Float32Array,
  dims: readonly number[],
  srcStrides: readonly number[],
  alpha = 1,
  accumulate = false,
): void {
  if (dst.length === 0) return;
  const c = coalesce(dims, [srcStrides]);
  stridedCopyKernel(src, dst, packGeometry(op, c.dims, c.strides), alpha, accumulate);
}

function normAxis(x: Tensor, axis: number, op: string, extra = 0): number {
  const n = x.ndim + extra;
  const a = axis < 0 ? axis + n : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= n)
    throw new CtfError(`${op}: axis ${axis} is out of range for ${x.describe()}`);
  return a;
}

/** The data as f32 for the copy kernels; an i32 tensor is viewed bit for bit (copies move bits unchanged). */
function bits(x: Tensor): Float32Array {
  const d = x.data;
  return d instanceof Float32Array ? d : new Float32Array(d.buffer, d.byteOffset, d.length);
}

/** A fresh tensor of x's dtype with the given shape, and its data as f32 bits. */
function emptyLike(x: Tensor, shape: number[]): { out: Tensor; dst: Float32Array } {
  const n = sizeOf(shape);
  const out = new Tensor(x.dtype === 'f32' ? new Float32Array(n) : new Int32Array(n), shape);
  return { out, dst: bits(out) };
}

/** Same data, new shape (one dim may be -1). The output shares x's buffer; its gradient does not. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const dims = [...shape];
  const free = dims.flatMap((d, i) => (d === -1 ? [i] : []));
  if (free.length > 1)
    throw new CtfError(`reshape: ${x.describe()} to ${shapeStr(shape)}: at most one dimension can be -1`);
  for (const d of dims)
    if (!Number.isInteger(d) || d < -1)
      throw new CtfError(`reshape: ${x.describe()} to ${shapeStr(shape)}: bad dimension ${d}`);
  if (free.length === 1) {
    const known = dims.reduce((p, d) => (d === -1 ? p : p * d), 1);
    if (known === 0 || x.size % known !== 0)
      throw new CtfError(`reshape: cannot infer the -1 in ${shapeStr(shape)} for ${x.describe()} (${x.size} elements)`);
    dims[free[0]!] = x.size / known;
  }
  if (sizeOf(dims) !== x.size)
    throw new CtfError(
      `reshape: ${x.describe()} has ${x.size} elements, shape ${shapeStr(shape)} needs ${sizeOf(dims)}`,
    );
  const out = new Tensor(x.data, dims);
  return record('reshape', out, [x], (g) => {
    const gx = gradOf(x);
    if (gx) copyBlocks(g, 0, 0, gx, 0, 0, 1, g.length, true);
  });
}

/** Reorders dimensions: out.shape[i] = x.shape[dims[i]]. Copies (a tiled transpose when needed). */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim)
    throw new CtfError(`permute: ${x.describe()} needs ${x.ndim} dims, got [${dims.join(',')}]`);
  const perm = dims.map((d) => normAxis(x, d, 'permute'));
  if (new Set(perm).size !== perm.length)
    throw new CtfError(`permute: [${dims.join(',')}] is not a permutation for ${x.describe()}`);
  const outShape = perm.map((p) => x.shape[p]!);
  const xs = contiguousStrides(x.shape);
  const { out, dst } = emptyLike(x, outShape);
  stridedCopyInto('permute', bits(x), dst, outShape, perm.map((p) => xs[p]!));
  return record('permute', out, [x], (g) => {
    const gx = gradOf(x);
    if (!gx) return;
    // gx[x index] += g[out index]: walk x's dims, reading g with the inverse permutation's strides.
    const os = contiguousStrides(outShape);
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => { inv[p] = i; });
    stridedCopyInto('permute', g, gx, x.shape, inv.map((i) => os[i]!), 1, true);
  });
}

/** Swaps two dimensions (negative dims count from the end). */
export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  const a = normAxis(x, d0, 'transpose'), b = normAxis(x, d1, 'transpose');
  const perm = [...x.shape.keys()];
  perm[a] = b; perm[b] = a;
  return permute(x, perm);
}

/** x[..., start:end, ...] along axis (negative start/end count from the end; end defaults to the size). */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const ax = normAxis(x, axis, 'slice');
  const D = x.shape[ax]!;
  const s = start < 0 ? start + D : start, e = end === undefined ? D : end < 0 ? end + D : end;
  if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > D || s > e)
    throw new CtfError(
      `slice: [${start}:${end ?? ''}] along axis ${axis} is out of range for ${x.describe()} (size ${D})`,
    );
  const inner = sizeOf(x.shape.slice(ax + 1)), outer = sizeOf(x.shape.slice(0, ax)), L = e - s;
  const outShape = [...x.shape];
  outShape[ax] = L;
  const { out, dst } = emptyLike(x, outShape);
  copyBlocks(bits(x), s * inner, D * inner, dst, 0, L * inner, outer, L * inner, false);
  return record('slice', out, [x], (g) => {
    const gx = gradOf(x);
    if (gx) copyBlocks(g, 0, L * inner, gx, s * inner, D * inner, outer, L * inner, true);
  });
}

/** Joins tensors along axis; all other dims must agree. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  const first = xs[0];
  if (first === undefined) throw new CtfError('concat: needs at least one tensor');
  const ax = normAxis(first, axis, 'concat');
  for (const x of xs)
    if (x.dtype !== first.dtype || x.ndim !== first.ndim || x.shape.some((d, i) => i !== ax && d !== first.shape[i]))
      throw new CtfError(`concat: ${x.describe()} does not match ${first.describe()} (the dtype and every dim but ` +
        `axis ${axis} must agree)`);
  const inner = sizeOf(first.shape.slice(ax + 1)), outer = sizeOf(first.shape.slice(0, ax));
  const total = xs.reduce((p, x) => p + x.shape[ax]!, 0);
  const outShape = [...first.shape];
  outShape[ax] = total;
  const { out, dst } = emptyLike(first, outShape);
  const offsets: number[] = [];
  let off = 0;
  for (const x of xs) {
    const L = x.shape[ax]!;
    offsets.push(off);
    copyBlocks(bits(x), 0, L * inner, dst, off * inner, total * inner, outer, L * inner, false);
    off += L;
  }
  return record('concat', out, [...xs], (g) => {
    xs.forEach((x, i) => {
      const gx = gradOf(x);
      const L = x.shape[ax]!;
      if (gx) copyBlocks(g, offsets[i]! * inner, total * inner, gx, 0, L * inner, outer, L * inner, true);
    });
  });
}
