import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../../src/engine/autograd.js';
import { addRmsNormRows, prefixEmbedding, swiglu, swigluPacked } from '../../src/engine/ops/fused.js';
import { intTensor } from '../../src/engine/tensor.js';
import { assertClose, gradcheck, randn } from '../helpers.js';

const silu = (x: number): number => x / (1 + Math.exp(-x));

test('swiglu: silu(a)·b forward and gradients', () => {
  const a = randn([3, 5], 1, { requiresGrad: true }), b = randn([3, 5], 2, { requiresGrad: true });
  const y = noGrad(() => swiglu(a, b));
  assertClose(y.f32, Array.from(a.f32, (x, i) => silu(x) * b.f32[i]!));
  gradcheck(([x, z]) => swiglu(x!, z!), [a, b]);
});

test('swigluPacked: [a | b] on the last axis', () => {
  const ab = randn([2, 3, 8], 3, { requiresGrad: true });
  const y = noGrad(() => swigluPacked(ab));
  assert.deepEqual(y.shape, [2, 3, 4]);
  const ref: number[] = [];
  for (let r = 0; r < 6; r++) for (let j = 0; j < 4; j++) ref.push(silu(ab.f32[r * 8 + j]!) * ab.f32[r * 8 + 4 + j]!);
  assertClose(y.f32, ref);
  gradcheck(([x]) => swigluPacked(x!), [ab], { maxPerInput: 48 });
  assert.throws(() => swigluPacked(randn([2, 3], 4)), /even last dimension/);
});

test('prefixEmbedding: class row then token rows; gradients scatter-add into both tables', () => {
  const cls = randn([3, 4], 5, { requiresGrad: true }), tok = randn([6, 4], 6, { requiresGrad: true });
  const classes = intTensor([2, 0], [2]), tokens = intTensor([1, 5, 1, 0, 3, 3], [2, 3]);
  const y = noGrad(() => prefixEmbedding(cls, classes, tok, tokens));
  assert.deepEqual(y.shape, [2, 4, 4]);
  const row = (t: Float32Array, i: number): number[] => Array.from(t.subarray(i * 4, i * 4 + 4));
  assertClose(y.f32, [row(cls.f32, 2), row(tok.f32, 1), row(tok.f32, 5), row(tok.f32, 1),
    row(cls.f32, 0), row(tok.f32, 0), row(tok.f32, 3), row(tok.f32, 3)].flat());
  gradcheck(([c, t]) => prefixEmbedding(c!, classes, t!, tokens), [cls, tok]);
  assert.throws(() => prefixEmbedding(cls, intTensor([3, 0], [2]), tok, tokens), /class 3 at batch row 0 outside \[0, 3\)/);
  assert.throws(() => prefixEmbedding(cls, classes, tok, intTensor([1, 5, 1, 0, 6, 3], [2, 3])), /token 6 at \(1, 1\)/);
});

test('addRmsNormRows: residual add then RMSNorm', () => {
  const N = 3, D = 5, eps = 1e-5;
  const h = randn([N, D], 7).f32, delta = randn([N, D], 8).f32, w = randn([D], 9).f32;
  const sum = h.map((x, i) => x + delta[i]!);
  const out = new Float32Array(N * D);
  addRmsNormRows(h, delta, w, out, N, D, eps);
  assertClose(h, sum);
  const ref: number[] = [];
  for (let i = 0; i < N; i++) {
    let ms = 0;
    for (let d = 0; d < D; d++) ms += sum[i * D + d]! ** 2 / D;
    for (let d = 0; d < D; d++) ref.push(sum[i * D + d]! / Math.sqrt(ms + eps) * w[d]!);
  }
  assertClose(out, ref);
});
