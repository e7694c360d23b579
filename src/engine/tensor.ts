// A tensor is a shape, a dtype and a JS-owned typed array (row-major, contiguous). Kernels read and
// write the array in place. Gradients live beside the data as another Float32Array.
import { CtfError } from '../errors.js';
import type { TapeNode } from './autograd.js';

export type DType = 'f32' | 'i32';
export type Shape = readonly number[];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function checkShape(shape: Shape, where: string): void {
  for (const d of shape)
    if (!Number.isInteger(d) || d < 0)
      throw new CtfError(`${where}: bad shape ${shapeStr(shape)} (dimensions must be integers ≥ 0)`);
}

export class Tensor {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly data: Float32Array | Int32Array;
  /** Gradient of the last backward pass; null until something flows into it. */
  grad: Float32Array | null = null;
  requiresGrad: boolean;
  /** The op that produced this tensor while recording (null for leaves and in no-grad scope). */
  node: TapeNode | null = null;
  name: string | undefined;

  constructor(data: Float32Array | Int32Array, shape: Shape, opts: { requiresGrad?: boolean; name?: string } = {}) {
    checkShape(shape, opts.name ?? 'tensor');
    if (data.length !== sizeOf(shape))
      throw new CtfError(`${opts.name ?? 'tensor'}: data has ${data.length} elements but shape ${shapeStr(shape)} ` +
        `needs ${sizeOf(shape)}`);
    this.shape = Object.freeze([...shape]);
    this.dtype = data instanceof Float32Array ? 'f32' : 'i32';
    this.data = data;
    this.requiresGrad = opts.requiresGrad ?? false;
    if (this.requiresGrad && this.dtype !== 'f32')
      throw new CtfError(`${opts.name ?? 'tensor'}: only f32 tensors can require gradients`);
    this.name = opts.name;
  }

  get size(): number { return this.data.length; }
  get ndim(): number { return this.shape.length; }

  /** Dimension d, negative counts from the end. */
  dim(d: number): number {
    const i = d < 0 ? this.shape.length + d : d;
    const v = this.shape[i];
    if (v === undefined) throw new CtfError(`${this.describe()}: no dimension ${d}`);
    return v;
  }

  /** The Float32Array data; a clear error if this is an integer tensor. */
  get f32(): Float32Array {
    if (!(this.data instanceof Float32Array)) throw new CtfError(`${this.describe()}: expected an f32 tensor, got i32`);
    return this.data;
  }

  get i32(): Int32Array {
    if (!(this.data instanceof Int32Array)) throw new CtfError(`${this.describe()}: expected an i32 tensor, got f32`);
    return this.data;
  }

  describe(): string {
    return `${this.name ?? 'tensor'} ${this.dtype}${shapeStr(this.shape)}`;
  }

  toArray(): number[] { return Array.from(this.data); }
  item(): number {
    if (this.size !== 1) throw new CtfError(`${this.describe()}: item() needs a single element`);
    return this.data[0]!;
  }
}

export function zeros(shape: Shape, opts: { requiresGrad?: boolean; name?: string } = {}): Tensor {
  checkShape(shape, opts.name ?? 'zeros');
  return new Tensor(new Float32Array(sizeOf(shape)), shape, opts);
}

export function full(shape: Shape, value: number, opts: { requiresGrad?: boolean; name?: string } = {}): Tensor {
  const t = zeros(shape, opts);
  t.f32.fill(value);
  return t;
}

export function tensor(
  values: ArrayLike<number>,
  shape: Shape,
  opts: { requiresGrad?: boolean; name?: string } = {},
): Tensor {
  return new Tensor(Float32Array.from(values), shape, opts);
}

export function intTensor(values: ArrayLike<number>, shape: Shape, name?: string): Tensor {
  return new Tensor(Int32Array.from(values), shape, { name });
}

/** Throws unless a has exactly the expected shape. */
export function expectShape(t: Tensor, expected: Shape, where: string): void {
  if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i]))
    throw new CtfError(`${where}: ${t.describe()} has shape ${shapeStr(t.shape)}, expected ${shapeStr(expected)}`);
}

export function expectDType(t: Tensor, dtype: DType, where: string): void {
  if (t.dtype !== dtype) throw new CtfError(`${where}: ${t.describe()} is ${t.dtype}, expected ${dtype}`);
}
