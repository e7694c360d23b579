import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../../src/engine/autograd.js';
import { selfAttentionQkv } from '../../src/engine/ops/attention.js';
import {
  addDropout,
  attentionBlock,
  prefixEmbedding,
  swiglu,
  swigluFfn,
  swigluPacked,
} from '../../src/engine/ops/fused.js';
import { backward } from '../../src/engine/autograd.js';
import { Rng } from '../../src/engine/rng.js';
import { linear } from '../../src/engine/ops/matmul.js';
import { ropeTable2d } from '../../src/engine/ops/rope.js';
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
  assert.throws(
    () => prefixEmbedding(cls, intTensor([3, 0], [2]), tok, tokens),
    /class 3 at batch row 0 outside \[0, 3\)/,
  );
  assert.throws(() => prefixEmbedding(cls, classes, tok, intTensor([1, 5, 1, 0, 6, 3], [2, 3])), /token 6 at \(1, 1\)/);
});

for (const [causal, hd] of [[true, 8], [false, 8], [true, 16], [false, 16]] as const) {
  // hd 16: the kernel reads q, k, v and writes its results in place; hd 8: through scratch copies.
  test(`attentionBlock (wqkv → RoPE attention → wo) causal=${causal} hd=${hd} ` +
    `equals its composition; gradients check`, () => {
    const B = 2,
      T = 5,
      H = 2,
      D = H * hd,
      table = ropeTable2d(2, hd);
    const x = randn([B, T, D], 31, { requiresGrad: true });
    const wqkv = randn([3 * D, D], 32, { requiresGrad: true, std: 0.3 });
    const wo = randn([D, D], 33, { requiresGrad: true, std: 0.3 });
    const o = { heads: H, causal, rope: table };
    const y = noGrad(() => attentionBlock(x, wqkv, wo, o));
    const ref = noGrad(() => linear(selfAttentionQkv(linear(x, wqkv), o), wo));
    assertClose(y.f32, ref.f32, { atol: 1e-5 });
    gradcheck(([a, b, c]) => attentionBlock(a!, b!, c!, o), [x, wqkv, wo], { maxPerInput: 30 });
    // Twice in one graph (pooled buffers must not be shared between live nodes).
    gradcheck(([a, b, c]) => attentionBlock(attentionBlock(a!, b!, c!, o), b!, c!, o), [x, wqkv, wo], {
      maxPerInput: 20,
    });
  });
}

test('swigluFfn (w1|w3 → SwiGLU → w2) equals its composition; gradients check', () => {
  const D = 6, h = 8;
  const x = randn([2, 3, D], 41, { requiresGrad: true });
  const w13 = randn([2 * h, D], 42, { requiresGrad: true, std: 0.5 });
  const w2 = randn([D, h], 43, { requiresGrad: true, std: 0.5 });
  const y = noGrad(() => swigluFfn(x, w13, w2));
  assertClose(y.f32, noGrad(() => linear(swigluPacked(linear(x, w13)), w2)).f32, { atol: 1e-5 });
  gradcheck(([a, b, c]) => swigluFfn(a!, b!, c!), [x, w13, w2], { maxPerInput: 30 });
  gradcheck(([a, b, c]) => swigluFfn(swigluFfn(a!, b!, c!), b!, c!), [x, w13, w2], { maxPerInput: 20 });
  assert.throws(() => swigluFfn(x, w2, w13), /must be/);
});

test('addDropout: h + dropout(x); plain sum when not training; gradients (incl. h used twice)', () => {
  const h = randn([4, 50], 51, { requiresGrad: true }), x = randn([4, 50], 52, { requiresGrad: true });
  const y = noGrad(() => addDropout(h, x, 0.3, new Rng(1), true));
  let dropped = 0;
  for (let i = 0; i < y.size; i++) {
    const d = y.f32[i]! - h.f32[i]!;
    if (Math.abs(d) < 1e-7) dropped++;
    else assert.ok(Math.abs(d - x.f32[i]! / 0.7) < 1e-5);
  }
  assert.ok(dropped > 30 && dropped < 90, `${dropped} of 200 dropped`);
  assertClose(noGrad(() => addDropout(h, x, 0.3, undefined, false)).f32, Array.from(h.f32, (v, i) => v + x.f32[i]!));
  // The same seed each evaluation, so finite differences see one fixed mask.
  gradcheck(([a, b]) => addDropout(a!, b!, 0.3, new Rng(2), true), [h, x]);
  gradcheck(([a, b]) => addDropout(addDropout(a!, b!, 0.3, new Rng(3), true), a!, 0.2, new Rng(4), true), [h, x]);
  gradcheck(([a]) => addDropout(a!, a!, 0.5, new Rng(5), true), [h]);
  assert.throws(() => addDropout(h, x, 0.1, undefined, true), /needs an rng/);
  const z = addDropout(h, x, 0, undefined, true);
  h.grad = null;
  backward(z, new Float32Array(z.size).fill(1));
  assert.ok(h.grad!.every((v) => v === 1));
});

test('large inputs (split over two threads): SwiGLU matches the formula, addDropout masks agree between passes', () => {
  const ab = randn([600, 1024], 61, { requiresGrad: true });
  const y = swigluPacked(ab);
  const ref = new Float32Array(600 * 512);
  for (let r = 0; r < 600; r++)
    for (let j = 0; j < 512; j++) ref[r * 512 + j] = silu(ab.f32[r * 1024 + j]!) * ab.f32[r * 1024 + 512 + j]!;
  assertClose(y.f32, ref, { atol: 1e-6, rtol: 1e-5 });
  const g = randn([600, 512], 62).f32;
  backward(y, g);
  const ga = ab.grad!;
  for (const i of [0, 12345, 300 * 512 + 7, 599 * 512 + 511]) {
    const r = Math.floor(i / 512),
      j = i % 512,
      a = ab.f32[r * 1024 + j]!,
      b = ab.f32[r * 1024 + 512 + j]!,
      s = 1 / (1 + Math.exp(-a));
    assert.ok(Math.abs(ga[r * 1024 + j]! - g[i]! * b * s * (1 + a * (1 - s))) < 1e-5);
    assert.ok(Math.abs(ga[r * 1024 + 512 + j]! - g[i]! * a * s) < 1e-5);
  }
  const h = randn([300000], 63, { requiresGrad: true }), x = randn([300000], 64, { requiresGrad: true });
  const z = addDropout(h, x, 0.25, new Rng(65), true);
  backward(z, new Float32Array(z.size).fill(1));
  let kept = 0;
  for (let i = 0; i < z.size; i++) {
    const keep = x.grad![i]! * 0.75;  // 1 where kept, 0 where dropped
    assert.ok(keep === 0 || Math.abs(keep - 1) < 1e-6);
    kept += keep;
    assert.ok(Math.abs(z.f32[i]! - h.f32[i]! - (keep * x.f32[i]!) / 0.75) < 1e-5, `element ${i}`);
  }
  assert.ok(Math.abs(kept / z.size - 0.75) < 0.01);
});
