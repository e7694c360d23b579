// Matrix products, all through OpenBLAS sgemm. Transposes are flags, never copies.
import { CtfError } from '../../errors.js';
import { gradOf, record } from '../autograd.js';
import { kernel } from '../native.js';
import { Tensor, shapeStr } from '../tensor.js';

type Sgemm = (ta: boolean, tb: boolean, M: number, N: number, K: number, alpha: number,
  A: Float32Array, offA: number, lda: number, B: Float32Array, offB: number, ldb: number,
  beta: number, C: Float32Array, offC: number, ldc: number) => void;
type SgemmBatched = (
  ta: boolean,
  tb: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  A: Float32Array,
  offA: number,
  lda: number,
  strideA: number,
  B: Float32Array,
  offB: number,
  ldb: number,
  strideB: number,
  beta: number,
  C: Float32Array,
  offC: number,
  ldc: number,
  strideC: number,
  batch: number,
) => void;

export const sgemm = kernel<Sgemm>('sgemm');
export const sgemmBatched = kernel<SgemmBatched>('sgemmBatched');

export interface MatmulOptions { transA?: boolean; transB?: boolean }

/**
 * op(a) @ op(b). a: (..., M, K) (or (..., K, M) with transA); b: (K, N) (or (N, K) with transB), or with
 * the same leading batch dimensions as a. A 2-D b is shared across a's batch (one sgemm when !transA).
 */
export function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor {
  const ta = o.transA ?? false, tb = o.transB ?? false;
  if (a.ndim < 2 || b.ndim < 2)
    throw new CtfError(`matmul: ${a.describe()} @ ${b.describe()}: both need ≥ 2 dimensions`);
  const M = ta ? a.dim(-1) : a.dim(-2), K = ta ? a.dim(-2) : a.dim(-1);
  const Kb = tb ? b.dim(-1) : b.dim(-2), N = tb ? b.dim(-2) : b.dim(-1);
  if (K !== Kb) throw new CtfError(`matmul: inner dimensions differ: ${a.describe()}${ta ? 'ᵀ' : ''} @ ` +
    `${b.describe()}${tb ? 'ᵀ' : ''} (${K} vs ${Kb})`);
  const batchShape = a.shape.slice(0, -2);
  const batch = batchShape.reduce((x, y) => x * y, 1);
  const shared = b.ndim === 2;
  if (!shared && shapeStr(b.shape.slice(0, -2)) !== shapeStr(batchShape))
    throw new CtfError(`matmul: batch dimensions differ: ${a.describe()} vs ${b.describe()}`);
  const A = a.f32, B = b.f32;
  const lda = ta ? M : K, ldb = tb ? K : N;
  const out = new Tensor(new Float32Array(batch * M * N), [...batchShape, M, N]);
  const C = out.f32;
  // A 2-D b with untransposed a: the batch folds into M, one big sgemm.
  const fold = shared && !ta;
  if (fold) sgemm(false, tb, batch * M, N, K, 1, A, 0, K, B, 0, ldb, 0, C, 0, N);
  else sgemmBatched(ta, tb, M, N, K, 1, A, 0, lda, M * K, B, 0, ldb, shared ? 0 : K * N, 0, C, 0, N, M * N, batch);

  return record('matmul', out, [a, b], (dC) => {
    const dA = gradOf(a), dB = gradOf(b);
    if (dA) {
      if (fold) sgemm(false, !tb, batch * M, K, N, 1, dC, 0, N, B, 0, ldb, 1, dA, 0, K);
      else if (!ta)
        sgemmBatched(false, !tb, M, K, N, 1, dC, 0, N, M * N, B, 0, ldb, shared ? 0 : K * N, 1, dA, 0, K, M * K, batch);
      else
        sgemmBatched(tb, true, K, M, N, 1, B, 0, ldb, shared ? 0 : K * N, dC, 0, N, M * N, 1, dA, 0, M, M * K, batch);
    }
    if (dB) {
      if (fold && !tb) sgemm(true, false, K, N, batch * M, 1, A, 0, K, dC, 0, N, 1, dB, 0, N);
      else if (fold) sgemm(true, false, N, K, batch * M, 1, dC, 0, N, A, 0, K, 1, dB, 0, K);
      else if (!tb)
        sgemmBatched(!ta, false, K, N, M, 1, A, 0, lda, M * K, dC, 0, N, M * N, 1, dB, 0, N, shared ? 0 : K * N, batch);
      else
        sgemmBatched(true, ta, N, K, M, 1, dC, 0, N, M * N, A, 0, lda, M * K, 1, dB, 0, K, shared ? 0 : K * N, batch);
    }
  });
}

/** x @ wᵀ with w stored (out, in) like torch.nn.Linear / LlamaGen; x is (..., in). */
export function linear(x: Tensor, w: Tensor): Tensor {
  if (w.ndim !== 2 || x.dim(-1) !== w.dim(1))
    throw new CtfError(`linear: input ${x.describe()} does not fit weight ${w.describe()} (expected last dim ` +
      `${w.ndim === 2 ? w.dim(1) : '?'})`);
  return matmul(x, w, { transB: true });
}
