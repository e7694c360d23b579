// Embedding lookup: rows of a (V, D) table gathered by i32 ids; the backward scatter-adds into the table's
// gradient (repeated ids accumulate). Kernels: native/embedding.cc.
import { CtfError } from '../../errors.js';
import { gradOf, record } from '../autograd.js';
import { kernel } from '../native.js';
import { Tensor } from '../tensor.js';

type EmbeddingForward = (table: Float32Array, V: number, D: number, ids: Int32Array, out: Float32Array) => number;
type EmbeddingBackward = (g: Float32Array, ids: Int32Array, gtable: Float32Array, V: number, D: number) => void;

const embeddingForward = kernel<EmbeddingForward>('embeddingForward');
const embeddingBackward = kernel<EmbeddingBackward>('embeddingBackward');

/** The multi-index of flat position pos in shape, as "[i,j,…]". */
export function indexOf(shape: readonly number[], pos: number): string {
  const idx = new Array<number>(shape.length);
  for (let i = shape.length - 1; i >= 0; i--) {
    idx[i] = pos % shape[i]!;
    pos = Math.floor(pos / shape[i]!);
  }
  return `[${idx.join(',')}]`;
}

/** table (V, D), ids i32 (...) -> (..., D). */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  if (table.dtype !== 'f32' || table.ndim !== 2)
    throw new CtfError(`embedding: table ${table.describe()} must be an f32 (V, D) matrix`);
  if (ids.dtype !== 'i32') throw new CtfError(`embedding: ids ${ids.describe()} must be i32, got ${ids.dtype}`);
  const V = table.dim(0), D = table.dim(1);
  const out = new Tensor(new Float32Array(ids.size * D), [...ids.shape, D]);
  const bad = embeddingForward(table.f32, V, D, ids.i32, out.f32);
  if (bad >= 0)
    throw new CtfError(
      `embedding: id ${ids.i32[bad]} at position ${indexOf(ids.shape, bad)} of ${ids.describe()} is out of range ` +
        `for ${table.describe()} (${V} rows: ids must be in [0, ${V - 1}])`,
    );
  return record('embedding', out, [table], (g) => {
    const gt = gradOf(table);
    if (gt) embeddingBackward(g, ids.i32, gt, V, D);
  });
}
