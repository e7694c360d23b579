import { test } from 'node:test';
import { matmul, linear, sgemm } from '../../src/engine/ops/matmul.js';
import { noGrad } from '../../src/engine/autograd.js';
import { assertClose, gradcheck, randn } from '../helpers.js';
import { Rng } from '../../src/engine/rng.js';

function naive(a: Float32Array, b: Float32Array, M: number, N: number, K: number, ta: boolean, tb: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += (ta ? a[k * M + i]! : a[i * K + k]!) * (tb ? b[j * K + k]! : b[k * N + j]!);
    out.push(s);
  }
  return out;
}

for (const ta of [false, true]) for (const tb of [false, true]) {
  test(`matmul 2-D transA=${ta} transB=${tb}: forward and gradients`, () => {
    const M = 5, N = 3, K = 4;
    const a = randn(ta ? [K, M] : [M, K], 1, { requiresGrad: true });
    const b = randn(tb ? [N, K] : [K, N], 2, { requiresGrad: true });
    const y = noGrad(() => matmul(a, b, { transA: ta, transB: tb }));
    assertClose(y.f32, naive(a.f32, b.f32, M, N, K, ta, tb));
    gradcheck(([x, w]) => matmul(x!, w!, { transA: ta, transB: tb }), [a, b]);
  });
  test(`matmul batched transA=${ta} transB=${tb}, shared and per-batch b`, () => {
    const a = randn(ta ? [2, 3, 4, 5] : [2, 3, 5, 4], 3, { requiresGrad: true });
    const bShared = randn(tb ? [6, 4] : [4, 6], 4, { requiresGrad: true });
    const bBatch = randn(tb ? [2, 3, 6, 4] : [2, 3, 4, 6], 5, { requiresGrad: true });
    gradcheck(([x, w]) => matmul(x!, w!, { transA: ta, transB: tb }), [a, bShared]);
    gradcheck(([x, w]) => matmul(x!, w!, { transA: ta, transB: tb }), [a, bBatch]);
  });
}

test('linear is x @ wᵀ', () => {
  const x = randn([2, 3, 4], 8, { requiresGrad: true });
  const w = randn([5, 4], 9, { requiresGrad: true });
  gradcheck(([a, b]) => linear(a!, b!), [x, w]);
});

// Tall products (≥ 256 rows, ≥ 8 MFLOP) run with the rows of C halved over two threads (native/gemm.cc): views
// with offsets, leading dimensions wider than the rows, an odd row count and beta ≠ 0 must come out the same.
for (const ta of [false, true]) for (const tb of [false, true]) {
  test(`sgemm on two threads by rows, transA=${ta} transB=${tb}: views, padding, alpha and beta`, () => {
    const [M, N, K, pad, off] = [301, 70, 200, 3, 5];
    const lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    const rng = new Rng(ta ? (tb ? 1 : 2) : tb ? 3 : 4);
    const fill = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.uniform() - 0.5);
    const A = fill(off + (ta ? K : M) * lda),
      B = fill(off + (tb ? N : K) * ldb),
      C = fill(off + M * ldc),
      C0 = C.slice();
    sgemm(ta, tb, M, N, K, 0.5, A, off, lda, B, off, ldb, 2, C, off, ldc);
    const a = Float32Array.from({ length: M * K }, (_, i) => {
      const r = Math.floor(i / K),
        k = i % K;
      return ta ? A[off + k * lda + r]! : A[off + r * lda + k]!;
    });
    const b = Float32Array.from({ length: K * N }, (_, i) => {
      const k = Math.floor(i / N),
        c = i % N;
      return tb ? B[off + c * ldb + k]! : B[off + k * ldb + c]!;
    });
    const want = naive(a, b, M, N, K, false, false);
    const got: number[] = [], expected: number[] = [];
    for (let r = 0; r < M; r++) for (let c = 0; c < N; c++) {
      got.push(C[off + r * ldc + c]!);
      expected.push(0.5 * want[r * N + c]! + 2 * C0[off + r * ldc + c]!);
    }
    assertClose(got, expected, { atol: 1e-4 });
    for (let r = 0; r < M; r++)
      for (let c = N; c < ldc; c++)
        if (C[off + r * ldc + c] !== C0[off + r * ldc + c]) throw new Error(`padding of C changed at row ${r}`);
  });
}
