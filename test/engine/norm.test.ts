import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noGrad } from '../../src/engine/autograd.js';
import { silu } from '../../src/engine/ops/elementwise.js';
import { groupNorm, groupNormSilu, layerNorm, rmsNorm } from '../../src/engine/ops/norm.js';
import { CtfError } from '../../src/errors.js';
import { assertClose, gradcheck, randn } from '../helpers.js';

// Normalises each of `rows` consecutive segments of `seg` values; scale/shift index by position → channel.
function naiveNorm(
  x: Float32Array,
  seg: number,
  center: boolean,
  eps: number,
  affine: (i: number) => [number, number],
): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / seg; r++) {
    const v = Array.from(x.subarray(r * seg, (r + 1) * seg));
    const m = center ? v.reduce((a, b) => a + b, 0) / seg : 0;
    const ms = v.reduce((a, b) => a + (b - m) ** 2, 0) / seg;
    v.forEach((e, i) => {
      const [w, b] = affine(r * seg + i);
      out.push(((e - m) / Math.sqrt(ms + eps)) * w + b);
    });
  }
  return out;
}

test('rmsNorm forward = x·rsqrt(mean(x²)+eps)·w; gradients for x and weight', () => {
  const x = randn([2, 3, 8], 1, { requiresGrad: true });
  const w = randn([8], 2, { requiresGrad: true });
  const y = noGrad(() => rmsNorm(x, w, 1e-5));
  assertClose(y.f32, naiveNorm(x.f32, 8, false, 1e-5, (i) => [w.f32[i % 8]!, 0]));
  gradcheck(([a, b]) => rmsNorm(a!, b!), [x, w]);
});

test('rmsNorm on tiny activations: eps dominates as in torch', () => {
  const x = randn([3, 4], 3, { std: 1e-4, requiresGrad: true });
  const w = randn([4], 4, { requiresGrad: true });
  const y = noGrad(() => rmsNorm(x, w, 1e-5));
  assertClose(y.f32, naiveNorm(x.f32, 4, false, 1e-5, (i) => [w.f32[i % 4]!, 0]), { atol: 1e-6 });
  gradcheck(([a, b]) => rmsNorm(a!, b!), [x, w], { eps: 1e-5 });
});

test('layerNorm with weight and bias, with neither, and with bias null', () => {
  const x = randn([4, 6], 5, { requiresGrad: true });
  const w = randn([6], 6, { requiresGrad: true });
  const b = randn([6], 7, { requiresGrad: true });
  assertClose(
    noGrad(() => layerNorm(x, w, b)).f32,
    naiveNorm(x.f32, 6, true, 1e-5, (i) => [w.f32[i % 6]!, b.f32[i % 6]!]),
  );
  assertClose(noGrad(() => layerNorm(x)).f32, naiveNorm(x.f32, 6, true, 1e-5, () => [1, 0]));
  gradcheck(([a, c, d]) => layerNorm(a!, c!, d!), [x, w, b]);
  gradcheck(([a]) => layerNorm(a!), [x]);
  gradcheck(([a, c]) => layerNorm(a!, c!, null, 1e-3), [x, w]);
});

test('groupNorm with groups < C: per-group statistics, per-channel affine', () => {
  const [N, C, H, W, G] = [2, 6, 3, 2, 3];
  const x = randn([N, C, H, W], 8, { requiresGrad: true });
  const w = randn([C], 9, { requiresGrad: true });
  const b = randn([C], 10, { requiresGrad: true });
  const chan = (i: number): number => Math.floor(i / (H * W)) % C;
  const y = noGrad(() => groupNorm(x, G, w, b));
  assertClose(y.f32, naiveNorm(x.f32, (C / G) * H * W, true, 1e-5, (i) => [w.f32[chan(i)]!, b.f32[chan(i)]!]));
  gradcheck(([a, c, d]) => groupNorm(a!, G, c!, d!), [x, w, b]);
  gradcheck(([a, c]) => groupNorm(a!, 2, c!, null), [x, w]);
  gradcheck(([a]) => groupNorm(a!, 1), [x]);
  gradcheck(([a]) => groupNorm(a!, C), [x]);  // one channel per group (InstanceNorm)
});

test('groupNorm on a tensor large enough to run on two threads equals the per-group reference', () => {
  const [N, C, H, W, G] = [16, 32, 24, 24, 8];  // 294 912 elements, 128 (n, g) pairs: split over two threads
  const x = randn([N, C, H, W], 21), w = randn([C], 22), b = randn([C], 23);
  const chan = (i: number): number => Math.floor(i / (H * W)) % C;
  const y = noGrad(() => groupNorm(x, G, w, b));
  assertClose(
    y.f32,
    naiveNorm(x.f32, (C / G) * H * W, true, 1e-5, (i) => [w.f32[chan(i)]!, b.f32[chan(i)]!]),
    { atol: 2e-5 },
  );
});

test('groupNormSilu: one pass without a graph, equal to silu(groupNorm); the ' +
  'composition (and its gradients) with one', () => {
  for (const [N, C, H, W, G] of [[2, 6, 3, 2, 3], [16, 32, 24, 24, 8]] as const) {
    const x = randn([N, C, H, W], 24, { requiresGrad: true });
    const w = randn([C], 25, { requiresGrad: true }), b = randn([C], 26, { requiresGrad: true });
    const fused = noGrad(() => groupNormSilu(x, G, w, b));
    assert.equal(fused.requiresGrad, false);
    assertClose(fused.f32, noGrad(() => silu(groupNorm(x, G, w, b))).f32, { atol: 1e-6 });
    const recorded = groupNormSilu(x, G, w, b);
    assert.equal(recorded.node?.op, 'silu', 'with a graph to record, the two ops are recorded');
    assertClose(recorded.f32, fused.f32, { atol: 1e-6 });
  }
  const x = randn([2, 6, 3, 2], 27, { requiresGrad: true }), w = randn([6], 28, { requiresGrad: true });
  gradcheck(([a, c]) => groupNormSilu(a!, 3, c!, null), [x, w]);
});

test('norms reject bad shapes with CtfError', () => {
  const x = randn([2, 4, 3, 3], 11);
  assert.throws(() => rmsNorm(x, randn([4], 1)), CtfError);
  assert.throws(() => layerNorm(x, randn([3], 1), randn([4], 2)), CtfError);
  assert.throws(() => groupNorm(x, 3), (e: unknown) => e instanceof CtfError && /3 groups/.test(e.message));
  assert.throws(() => groupNorm(x, 2, randn([3], 1)), CtfError);
});
