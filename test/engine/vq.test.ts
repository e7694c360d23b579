import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward } from '../../src/engine/autograd.js';
import { l2Normalize, nearestCodewords, vectorQuantize } from '../../src/engine/ops/vq.js';
import { nearestRows } from '../../src/engine/sampling.js';
import { Tensor } from '../../src/engine/tensor.js';
import { assertClose, gradcheck, randn } from '../helpers.js';

function unitRows(t: Tensor): Tensor {
  const D = t.dim(-1), d = t.f32.slice();
  for (let i = 0; i < d.length; i += D) {
    let s = 0;
    for (let k = 0; k < D; k++) s += d[i + k]! ** 2;
    for (let k = 0; k < D; k++) d[i + k]! /= Math.sqrt(s);
  }
  return new Tensor(d, t.shape);
}

test('l2Normalize: unit rows, F.normalize on a zero row, gradient by finite differences', () => {
  const x = randn([5, 8], 1);
  x.f32.fill(0, 8, 16);  // row 1 is zero: stays zero (divided by eps)
  const y = l2Normalize(x);
  for (let i = 0; i < 5; i++) {
    let s = 0;
    for (let k = 0; k < 8; k++) s += y.f32[i * 8 + k]! ** 2;
    assert.ok(i === 1 ? s === 0 : Math.abs(s - 1) < 1e-6, `row ${i} has squared norm ${s}`);
  }
  gradcheck(([a]) => l2Normalize(a!), [randn([6, 8], 2, { requiresGrad: true })], { eps: 1e-3 });
  gradcheck(([a]) => l2Normalize(a!), [randn([2, 3, 4], 3, { requiresGrad: true })], { eps: 1e-3 });
});

test('vectorQuantize: nearest codeword by brute force, gathered rows, loss values', () => {
  const z = unitRows(randn([40, 8], 4)), cb = unitRows(randn([64, 8], 5));
  const q = vectorQuantize(z, cb);
  let sq = 0;
  for (let i = 0; i < 40; i++) {
    let best = -1, bestD = Infinity;
    for (let j = 0; j < 64; j++) {
      let d = 0;
      for (let k = 0; k < 8; k++) d += (z.f32[i * 8 + k]! - cb.f32[j * 8 + k]!) ** 2;
      if (d < bestD) { bestD = d; best = j; }
    }
    assert.equal(q.index[i], best, `row ${i}`);
    assertClose(q.zq.f32.subarray(i * 8, i * 8 + 8), cb.f32.subarray(best * 8, best * 8 + 8), { atol: 0, rtol: 0 });
    sq += bestD;
  }
  assertClose([q.codebookLoss.item(), q.commitLoss.item()], [sq / 320, sq / 320], { rtol: 1e-5 });
});

test('vectorQuantize gradients: codebook loss → codebook only, commitment → z only, straight-through zq → z', () => {
  // Finite differences hold while every row keeps its nearest codeword, so compare with a fixed index.
  const z0 = unitRows(randn([12, 8], 6)), cb0 = unitRows(randn([20, 8], 7));
  const index = vectorQuantize(z0, cb0).index;
  gradcheck(
    ([cb]) => vectorQuantize(z0, cb!, index).codebookLoss,
    [new Tensor(cb0.f32.slice(), cb0.shape, { requiresGrad: true })],
    { eps: 1e-3 },
  );
  gradcheck(
    ([z]) => vectorQuantize(z!, cb0, index).commitLoss,
    [new Tensor(z0.f32.slice(), z0.shape, { requiresGrad: true })],
    { eps: 1e-3 },
  );

  const z = new Tensor(z0.f32.slice(), z0.shape, { requiresGrad: true }),
    cb = new Tensor(cb0.f32.slice(), cb0.shape, { requiresGrad: true });
  const q = vectorQuantize(z, cb);
  assert.equal(q.codebookLoss.node?.inputs.includes(z), false, 'no gradient path from the codebook loss to z');
  assert.equal(
    q.commitLoss.node?.inputs.includes(cb),
    false,
    'no gradient path from the commitment loss to the codebook',
  );
  const g = randn([12, 8], 8).f32;
  backward(q.zq, g);
  assertClose(z.grad!, g, { atol: 0, rtol: 0, what: 'straight-through gradient' });
  assert.equal(cb.grad, null, 'zq passes nothing to the codebook');
});

test('vectorQuantize: shape errors name the tensors', () => {
  assert.throws(() => vectorQuantize(randn([4, 7], 1), randn([10, 8], 2)), /must have the codebook's 8 features/);
  assert.throws(() => vectorQuantize(randn([4, 8], 1), randn([10, 8], 2), new Int32Array(3)), /3 indices for 4 rows/);
});

test('nearestCodewords: brute force on odd sizes (partial blocks and row groups, both threads), ties to the lowest ' +
  'index', () => {
  for (const [N, V, D] of [
    [1, 1, 1],
    [7, 300, 8],
    [1030, 513, 3],
    [4099, 1000, 16],
  ] as const) {
    const x = randn([N, D], N),
      cb = randn([V, D], V);
    const got = nearestCodewords(x, cb);
    for (let i = 0; i < N; i += Math.max(1, Math.floor(N / 60))) {
      let best = -1,
        bestD = Infinity;
      for (let j = 0; j < V; j++) {
        let d = 0;
        for (let k = 0; k < D; k++) d += (x.f32[i * D + k]! - cb.f32[j * D + k]!) ** 2;
        if (d < bestD) {
          bestD = d;
          best = j;
        }
      }
      assert.equal(got.index[i], best, `N=${N} V=${V} D=${D} row ${i}`);
      assert.ok(Math.abs(got.dist[i]! - bestD) < 1e-4 * (1 + bestD), `distance of row ${i}`);
    }
  }
  const cb = new Tensor(new Float32Array(600 * 8), [600, 8]);
  for (const j of [5, 300, 599]) cb.f32[j * 8] = 1; // three equal codewords in different blocks
  assert.deepEqual(
    Array.from(nearestCodewords(new Tensor(Float32Array.of(1, 0, 0, 0, 0, 0, 0, 0), [1, 8]), cb).index),
    [5],
  );
  const x = randn([500, 24], 1),
    wide = randn([100, 24], 2);
  assert.deepEqual(
    Array.from(nearestCodewords(x, wide).index),
    Array.from(nearestRows(x, wide).index),
    'D > 16 falls back to nearestRows',
  );
});
