// The smallest module convention: a module owns named leaf tensors (their names are the checkpoint
// names) and lists them with parameters(). Initialisers take a seeded Rng split by the parameter name,
// so adding a layer never changes the initial values of the others.
import { createHash } from 'node:crypto';
import { CtfError } from '../errors.js';
import type { Rng } from '../engine/rng.js';
import { Tensor, shapeStr, sizeOf, type Shape } from '../engine/tensor.js';

export interface Module {
  /** Trainable tensors, each named by its full checkpoint name. */
  parameters(): Tensor[];
}

/** A trainable tensor named `name`, filled by init (zeros when omitted). */
export function param(name: string, shape: Shape, init?: (data: Float32Array) => void): Tensor {
  const t = new Tensor(new Float32Array(sizeOf(shape)), shape, { requiresGrad: true, name });
  init?.(t.f32);
  return t;
}

/** U(−bound, bound) from the named child stream of rng. */
export function uniformInit(rng: Rng, name: string, bound: number): (data: Float32Array) => void {
  return (d) => { rng.split(name).fillUniform(d, -bound, bound); };
}

/** name → tensor for every parameter of the modules; a repeated name is a bug in the model. */
export function namedParameters(...modules: Module[]): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const m of modules)
    for (const p of m.parameters()) {
      if (p.name === undefined) throw new CtfError(`module parameter ${p.describe()} has no name`);
      if (out.has(p.name)) throw new CtfError(`two parameters are named "${p.name}"`);
      out.set(p.name, p);
    }
  return out;
}

export function countParameters(m: Module): number {
  return m.parameters().reduce((n, p) => n + p.size, 0);
}

/** What weightsHash reads of a tensor: a Tensor, or a tensor as read from a file. */
export type NamedWeights = ReadonlyMap<string, { readonly shape: Shape; readonly data: Float32Array | Int32Array }>;

/**
 * sha256 (hex) of named weights: for each in order, its name, shape and little-endian bytes. A checkpoint
 * stores it and loading recomputes it, so a flipped bit is refused; the tokenizer's is also its identity.
 */
export function weightsHash(params: NamedWeights): string {
  const h = createHash('sha256');
  for (const [name, t] of params) {
    h.update(`${name}\0${shapeStr(t.shape)}\0`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}
