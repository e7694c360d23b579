// 2D rotary position embedding as in LlamaGen: interleaved pairs (x[2j], x[2j+1]) of each head are
// rotated; with half = headDim/2, the first half/2 pairs by row·freq_j, the next half/2 by col·freq_j,
// freq_j = base^(-2j/half). The first `prefix` positions (the class token) get cos = sin = 0, so their
// rotated vectors are zero — LlamaGen does this, and matching it is what makes its weights load.
import { CtfError } from '../../errors.js';
import { gradOf, record } from '../autograd.js';
import { kernel } from '../native.js';
import { Tensor } from '../tensor.js';

type RopeApply = (x: Float32Array, out: Float32Array, cos: Float32Array, sin: Float32Array,
  B: number, T: number, H: number, hd: number, inverse: boolean, accumulate: boolean) => void;
type RopeQkvInPlace = (
  qkv: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  N: number,
  T: number,
  H: number,
  hd: number,
  scale: number,
  inverse: boolean,
) => void;
const ropeApply = kernel<RopeApply>('ropeApply');
/**
 * In place on a fused projection (B·T rows of q | k | v): q ← scale · rope(q), k ← rope(k), by position
 * t = row mod T with tables (T, hd/2) (empty tables: q only scaled); inverse: the transpose of that map,
 * for the gradient. Used by attentionBlock (fused.ts). See native/rope.cc.
 */
export const ropeQkvInPlace = kernel<RopeQkvInPlace>('ropeQkvInPlace');

/** cos/sin (rows, headDim/2): row p holds the angles of sequence position p. */
export interface RopeTable {
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  readonly rows: number;
  readonly headDim: number;
}

export interface Rope2dOptions {
  base?: number;    // 10000
  prefix?: number;  // positions before the grid with all-zero rows (the class token); 1
}

/** LlamaGen's precompute_freqs_cis_2d: prefix zero rows, then grid·grid cells in row-major order. */
export function ropeTable2d(grid: number, headDim: number, o: Rope2dOptions = {}): RopeTable {
  const base = o.base ?? 10000, prefix = o.prefix ?? 1;
  if (!Number.isInteger(headDim) || headDim % 4 !== 0)
    throw new CtfError(`ropeTable2d: head dim ${headDim} must be a multiple of 4 (half of the pairs per axis)`);
  const half = headDim / 2, quarter = half / 2, pairs = headDim / 2;
  // float32 arithmetic step by step, as torch computes the table.
  const f = Math.fround;
  const freqs = Array.from({ length: quarter }, (_, j) => f(1 / f(Math.pow(base, f(f(2 * j) / half)))));
  const rows = prefix + grid * grid;
  const cos = new Float32Array(rows * pairs), sin = new Float32Array(rows * pairs);
  for (let r = 0; r < grid; r++)
    for (let c = 0; c < grid; c++) {
      const p = prefix + r * grid + c;
      for (let j = 0; j < pairs; j++) {
        const angle = j < quarter ? f(r * freqs[j]!) : f(c * freqs[j - quarter]!);
        cos[p * pairs + j] = Math.cos(angle);
        sin[p * pairs + j] = Math.sin(angle);
      }
    }
  return { cos, sin, rows, headDim };
}

/** Rows [start, start + count) of a table, as views (no copy). */
export function ropeRows(table: RopeTable, start: number, count: number): RopeTable {
  if (start < 0 || start + count > table.rows)
    throw new CtfError(`rope: positions ${start}..${start + count - 1} outside the table's ${table.rows} rows ` +
      `(sequence longer than grid² + prefix?)`);
  const pairs = table.headDim / 2;
  return {
    cos: table.cos.subarray(start * pairs, (start + count) * pairs),
    sin: table.sin.subarray(start * pairs, (start + count) * pairs),
    rows: count,
    headDim: table.headDim,
  };
}

/** x (B, T, H, hd) rotated by table rows 0..T-1. */
export function rope2d(x: Tensor, table: RopeTable): Tensor {
  if (x.ndim !== 4 || x.dim(3) !== table.headDim)
    throw new CtfError(`rope2d: ${x.describe()} must be (B, T, H, ${table.headDim})`);
  const [B, T, H, hd] = x.shape as [number, number, number, number];
  const rows = ropeRows(table, 0, T);
  const out = new Tensor(new Float32Array(x.size), x.shape);
  ropeApply(x.f32, out.f32, rows.cos, rows.sin, B, T, H, hd, false, false);
  return record('rope2d', out, [x], (g) => {
    const dx = gradOf(x);
    if (dx) ropeApply(g, dx, rows.cos, rows.sin, B, T, H, hd, true, true);
  });
}
