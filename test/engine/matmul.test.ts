import { test } from 'node:test';
import { matmul, linear } from '../../src/engine/ops/matmul.js';
import { noGrad } from '../../src/engine/autograd.js';
import { assertClose, gradcheck, randn } from '../helpers.js';

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
