import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noGrad } from '../../src/engine/autograd.js';
import {
  add, addScalar, div, dropout, exp, gelu, log, mul, mulScalar, neg, relu, silu, sqrt, sub,
} from '../../src/engine/ops/elementwise.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor, intTensor, tensor } from '../../src/engine/tensor.js';
import { assertClose, gradcheck, randn } from '../helpers.js';

/** Reference broadcasting by explicit index arithmetic. */
function naiveBinary(a: Tensor, b: Tensor, f: (x: number, y: number) => number): { shape: number[]; data: number[] } {
  const n = Math.max(a.ndim, b.ndim);
  const pad = (s: readonly number[]) => [...Array<number>(n - s.length).fill(1), ...s];
  const sa = pad(a.shape), sb = pad(b.shape);
  const shape = sa.map((d, i) => Math.max(d, sb[i]!));
  const total = shape.reduce((p, d) => p * d, 1);
  const data: number[] = [];
  for (let i = 0; i < total; i++) {
    let rem = i, ia = 0, ib = 0, ma = 1, mb = 1;
    for (let k = n - 1; k >= 0; k--) {
      const idx = rem % shape[k]!;
      rem = Math.floor(rem / shape[k]!);
      ia += (sa[k] === 1 ? 0 : idx) * ma; ma *= sa[k]!;
      ib += (sb[k] === 1 ? 0 : idx) * mb; mb *= sb[k]!;
    }
    data.push(f(a.data[ia]!, b.data[ib]!));
  }
  return { shape, data };
}

/** erfc in float64: Maclaurin series of erf below 2.5, the Laplace continued fraction above. */
function erfc(z: number): number {
  if (z < 0) return 2 - erfc(-z);
  if (z < 2.5) {
    let term = z, s = z;
    for (let k = 1; k < 100; k++) { term *= (-z * z) / k; s += term / (2 * k + 1); }
    return 1 - (2 / Math.sqrt(Math.PI)) * s;
  }
  let K = z;
  for (let k = 80; k >= 1; k--) K = z + k / 2 / K;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / K;
}

const geluRef = (x: number): number => 0.5 * x * erfc(-x / Math.SQRT2);

/** Keeps values away from 0 (for div, log, sqrt, relu's kink). */
function awayFromZero(t: Tensor, min: number, positive = false): Tensor {
  const d = t.f32;
  for (let i = 0; i < d.length; i++) {
    const v = positive ? Math.abs(d[i]!) : d[i]!;
    d[i] = v < 0 ? v - min : v + min;
  }
  return t;
}

const SHAPES: [number[], number[], string][] = [
  [[3, 4], [3, 4], 'same shape'],
  [[5, 6], [6], 'b broadcast over leading dims'],
  [[6], [2, 3, 6], 'a broadcast over leading dims'],
  [[2, 1, 4], [3, 1], 'both broadcast'],
  [[2, 3, 1, 5], [1, 3, 4, 1], 'strided 4-D'],
  [[4, 3], [4, 1], 'column broadcast'],
  [[], [2, 3], 'scalar tensor'],
  [[2, 1, 3, 1, 2, 1], [1, 2, 1, 2, 1, 3], '6-D alternating'],
];

const OPS = [
  { name: 'add', f: add, ref: (x: number, y: number) => x + y },
  { name: 'sub', f: sub, ref: (x: number, y: number) => x - y },
  { name: 'mul', f: mul, ref: (x: number, y: number) => x * y },
  { name: 'div', f: div, ref: (x: number, y: number) => x / y },
];

for (const op of OPS)
  for (const [sa, sb, what] of SHAPES)
    test(`${op.name} ${what} ${JSON.stringify(sa)} ∘ ${JSON.stringify(sb)}: forward and gradients`, () => {
      const a = randn(sa, 11, { requiresGrad: true });
      const b = awayFromZero(randn(sb, 12, { requiresGrad: true }), 0.5);
      const y = noGrad(() => op.f(a, b));
      const ref = naiveBinary(a, b, op.ref);
      assert.deepEqual(y.shape, ref.shape);
      assertClose(y.f32, ref.data);
      gradcheck(([x, z]) => op.f(x!, z!), [a, b]);
    });

test('mul of a tensor with itself: both gradient contributions land in one buffer', () => {
  const x = randn([4, 5], 3, { requiresGrad: true });
  gradcheck(([t]) => mul(t!, t!), [x]);
  gradcheck(([t]) => div(addScalar(t!, 10), addScalar(t!, 10)), [x]);
});

test('large broadcast rows take the vectorised paths correctly', () => {
  const a = randn([33, 257], 4, { requiresGrad: true });
  const b = randn([257], 5, { requiresGrad: true });
  const c = randn([33, 1], 6, { requiresGrad: true });
  for (const [x, z] of [[a, b], [a, c], [b, a], [c, a]] as const) {
    assertClose(noGrad(() => mul(x, z)).f32, naiveBinary(x, z, (p, q) => p * q).data);
    gradcheck(([p, q]) => sub(p!, q!), [x, z], { maxPerInput: 12 });
  }
});

test('binary ops reject bad shapes and dtypes', () => {
  assert.throws(() => add(randn([2, 3], 1), randn([4], 2)), /add: shapes do not broadcast: .*\[2,3\].*\[4\]/);
  assert.throws(
    () => mul(randn([2, 3], 1), intTensor([1, 2, 3], [3], 'ids')),
    /mul: ids i32\[3\] is i32, expected f32/,
  );
});

const UNARY = [
  { name: 'neg', f: neg, ref: (x: number) => -x, positive: false },
  { name: 'addScalar', f: (t: Tensor) => addScalar(t, 0.75), ref: (x: number) => x + 0.75, positive: false },
  { name: 'mulScalar', f: (t: Tensor) => mulScalar(t, -1.5), ref: (x: number) => x * -1.5, positive: false },
  { name: 'exp', f: exp, ref: Math.exp, positive: false },
  { name: 'log', f: log, ref: Math.log, positive: true },
  { name: 'sqrt', f: sqrt, ref: Math.sqrt, positive: true },
  { name: 'relu', f: relu, ref: (x: number) => Math.max(x, 0), positive: false },
  { name: 'silu', f: silu, ref: (x: number) => x / (1 + Math.exp(-x)), positive: false },
  { name: 'gelu', f: gelu, ref: geluRef, positive: false },
];

for (const u of UNARY)
  test(`${u.name}: forward and gradient`, () => {
    const x = awayFromZero(randn([7, 9], 21, { requiresGrad: true, std: 2 }), 0.05, u.positive);
    const y = noGrad(() => u.f(x));
    assertClose(y.f32, Array.from(x.f32, u.ref), { atol: 1e-6, rtol: 1e-5 });
    gradcheck(([t]) => u.f(t!), [x], { eps: 1e-2 });
  });

test('silu and gelu match torch at known points and stay finite at extremes', () => {
  const x = tensor([-1, 1, 3, -100, 100, 0], [6]);
  // torch.nn.GELU()(x) and torch.nn.SiLU()(x) for the first three points
  assertClose(gelu(x).f32.slice(0, 3), [-0.15865525, 0.84134475, 2.99595031], { atol: 1e-6 });
  assertClose(silu(x).f32.slice(0, 3), [-0.26894142, 0.73105858, 2.85772238], { atol: 1e-6 });
  assertClose(silu(x).f32.slice(3), [0, 100, 0], { atol: 1e-6 });
  assertClose(gelu(x).f32.slice(3), [0, 100, 0], { atol: 1e-6 });
});

test('gelu keeps its relative accuracy in the negative tail (vectorised erfc)', () => {
  const xs = tensor(Array.from({ length: 4001 }, (_, i) => -10 + i * 0.005), [4001]);
  assertClose(gelu(xs).f32, Array.from(xs.f32, geluRef), { atol: 1e-30, rtol: 2e-5 });
});

test('exp is accurate over the whole float range, underflows to 0 and overflows to inf', () => {
  const xs = tensor(Array.from({ length: 1901 }, (_, i) => -87 + i * 0.0924), [1901]);
  assertClose(exp(xs).f32, Array.from(xs.f32, Math.exp), { atol: 0, rtol: 2e-7 });
  const y = exp(tensor([-104, 89, -Infinity, Infinity, NaN], [5])).f32;
  assert.deepEqual(Array.from(y.slice(0, 4)), [0, Infinity, 0, Infinity]);
  assert.ok(Number.isNaN(y[4]));
});

test('dropout: fraction zeroed ≈ p, mean preserved, kept values scaled by 1/(1-p)', () => {
  const n = 200_000, p = 0.3;
  const x = tensor(new Float32Array(n).fill(2), [n]);
  const y = dropout(x, p, new Rng(5), true).f32;
  let zeros = 0, s = 0;
  for (const v of y) { if (v === 0) zeros++; else assertClose([v], [2 / (1 - p)]); s += v; }
  assert.ok(Math.abs(zeros / n - p) < 0.005, `fraction zeroed ${zeros / n}, expected ${p}`);
  assert.ok(Math.abs(s / n - 2) < 0.02, `mean ${s / n}, expected 2`);
});

test('dropout: same seed gives the same mask, another seed another; identity when not training or p = 0', () => {
  const x = randn([64, 33], 8);
  const a = dropout(x, 0.5, new Rng(1), true).f32, b = dropout(x, 0.5, new Rng(1), true).f32;
  const c = dropout(x, 0.5, new Rng(2), true).f32;
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const rng = new Rng(3);
  assert.equal(dropout(x, 0.5, rng, false), x);
  assert.equal(dropout(x, 0, rng, true), x);
  assert.deepEqual(rng.getState(), new Rng(3).getState(), 'identity paths must not consume randomness');
  assert.ok(dropout(x, 1, new Rng(1), true).f32.every((v) => v === 0));
});

test('dropout: gradient flows through the same mask (regenerated from the seed)', () => {
  const x = randn([6, 7], 9, { requiresGrad: true });
  const seed = new Rng(4);
  const state = seed.getState();
  // Reset the stream before every evaluation so gradcheck's repeated forwards draw the same mask.
  gradcheck(([t]) => { seed.setState(state); return dropout(t!, 0.4, seed, true); }, [x]);
  assert.throws(() => dropout(x, 1.5, seed, true), /dropout: probability 1.5 .* must be in \[0, 1\]/);
});
