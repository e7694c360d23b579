// Sums and means over any set of axes. The forward is native/reduce.cc (sumAxes); the backward broadcasts
// the gradient back over the reduced axes with the same geometry (the strided copy of shape.ts).
import { CtfError } from '../../errors.js';
import { gradOf, record } from '../autograd.js';
import { kernel } from '../native.js';
import { Tensor } from '../tensor.js';
import { coalesce, contiguousStrides, packGeometry, stridedCopyInto } from './shape.js';

type SumAxes = (x: Float32Array, out: Float32Array, geom: Int32Array, alpha: number) => void;
const sumAxes = kernel<SumAxes>('sumAxes');

export type Axes = number | readonly number[] | undefined;

/** Sorted, distinct, non-negative axes; undefined means all of them. */
function normAxes(x: Tensor, axes: Axes, op: string): number[] {
  if (axes === undefined) return [...x.shape.keys()];
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = list.map((a) => {
    const n = a < 0 ? a + x.ndim : a;
    if (!Number.isInteger(a) || n < 0 || n >= x.ndim)
      throw new CtfError(`${op}: axis ${a} is out of range for ${x.describe()}`);
    return n;
  });
  if (new Set(out).size !== out.length)
    throw new CtfError(`${op}: axes [${list.join(',')}] repeat an axis of ${x.describe()}`);
  return out.sort((a, b) => a - b);
}

function reduce(op: 'sum' | 'mean', x: Tensor, axes: Axes, keepDim: boolean): Tensor {
  if (x.dtype !== 'f32') throw new CtfError(`${op}: ${x.describe()} is ${x.dtype}, expected f32`);
  const red = new Set(normAxes(x, axes, op));
  const kept = x.shape.map((d, i) => (red.has(i) ? 1 : d));
  const outShape = keepDim ? kept : x.shape.filter((_, i) => !red.has(i));
  const count = x.shape.reduce((p, d, i) => (red.has(i) ? p * d : p), 1);
  const alpha = op === 'mean' ? 1 / count : 1;
  // Where element i of x lands in out: kept dims use out's strides, reduced dims stride 0.
  const ks = contiguousStrides(kept);
  const outStrides = x.shape.map((_, i) => (red.has(i) ? 0 : ks[i]!));
  const out = new Tensor(new Float32Array(kept.reduce((p, d) => p * d, 1)), outShape);
  if (x.size > 0) {
    const c = coalesce(x.shape, [outStrides]);
    sumAxes(x.f32, out.f32, packGeometry(op, c.dims, c.strides), alpha);
  } else if (op === 'mean') {
    out.f32.fill(NaN); // the mean of nothing, as in PyTorch
  }
  return record(op, out, [x], (g) => {
    const gx = gradOf(x);
    if (gx) stridedCopyInto(op, g, gx, x.shape, outStrides, alpha, true);
  });
}

/** Σ over axes (a number, a list, or undefined = all; negatives count from the end). */
export function sum(x: Tensor, axes?: Axes, keepDim = false): Tensor {
  return reduce('sum', x, axes, keepDim);
}

/** Mean over axes (a number, a list, or undefined = all; negatives count from the end). */
export function mean(x: Tensor, axes?: Axes, keepDim = false): Tensor {
  return reduce('mean', x, axes, keepDim);
}
