import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward, noGrad } from '../../src/engine/autograd.js';
import { blasInfo, blasSetThreads } from '../../src/engine/native.js';
import { conv2d, upsampleNearest2d } from '../../src/engine/ops/conv.js';
import { Tensor } from '../../src/engine/tensor.js';
import { CtfError } from '../../src/errors.js';
import { assertClose, gradcheck, randn } from '../helpers.js';

interface Geo { stride: [number, number]; padding: [number, number] }

// Direct definition of cross-correlation, float64.
function naiveConv(x: Tensor, w: Tensor, b: Tensor | null, g: Geo): number[] {
  const [N, C, H, W] = x.shape as number[] as [number, number, number, number];
  const [O, , kh, kw] = w.shape as number[] as [number, number, number, number];
  const [sh, sw] = g.stride, [ph, pw] = g.padding;
  const Ho = Math.floor((H + 2 * ph - kh) / sh) + 1, Wo = Math.floor((W + 2 * pw - kw) / sw) + 1;
  const out: number[] = [];
  for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
    let s = b ? b.f32[o]! : 0;
    for (let c = 0; c < C; c++) for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) {
      const ih = i * sh - ph + u, iw = j * sw - pw + v;
      if (ih >= 0 && ih < H && iw >= 0 && iw < W)
        s += x.f32[((n * C + c) * H + ih) * W + iw]! * w.f32[((o * C + c) * kh + u) * kw + v]!;
    }
    out.push(s);
  }
  return out;
}

// Gradients of Σ y·dy by the definition: every (output, tap) pair adds its product to dx and dw.
function naiveConvGrads(x: Tensor, w: Tensor, dy: Float32Array, g: Geo): { dx: number[]; dw: number[]; db: number[] } {
  const [N, C, H, W] = x.shape as number[] as [number, number, number, number];
  const [O, , kh, kw] = w.shape as number[] as [number, number, number, number];
  const [sh, sw] = g.stride, [ph, pw] = g.padding;
  const Ho = Math.floor((H + 2 * ph - kh) / sh) + 1, Wo = Math.floor((W + 2 * pw - kw) / sw) + 1;
  const dx = new Array<number>(x.size).fill(0),
    dw = new Array<number>(w.size).fill(0),
    db = new Array<number>(O).fill(0);
  for (let n = 0; n < N; n++) for (let o = 0; o < O; o++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
    const d = dy[((n * O + o) * Ho + i) * Wo + j]!;
    db[o] = db[o]! + d;
    for (let c = 0; c < C; c++) for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) {
      const ih = i * sh - ph + u, iw = j * sw - pw + v;
      if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
      const xi = ((n * C + c) * H + ih) * W + iw, wi = ((o * C + c) * kh + u) * kw + v;
      dx[xi] = dx[xi]! + d * w.f32[wi]!;
      dw[wi] = dw[wi]! + d * x.f32[xi]!;
    }
  }
  return { dx, dw, db };
}

const cases: { name: string; x: number[]; w: number[]; g: Geo; bias: boolean }[] = [
  { name: '3×3 same', x: [2, 3, 6, 5], w: [4, 3, 3, 3], g: { stride: [1, 1], padding: [1, 1] }, bias: true },
  {
    name: '3×3 stride 2 padding 1',
    x: [2, 3, 7, 6],
    w: [4, 3, 3, 3],
    g: { stride: [2, 2], padding: [1, 1] },
    bias: true,
  },
  {
    name: 'non-square 2×3 kernel, stride (1,2), padding (0,1), no bias',
    x: [2, 2, 5, 7],
    w: [3, 2, 2, 3],
    g: { stride: [1, 2], padding: [0, 1] },
    bias: false,
  },
  {
    name: '4×4 stride 2 padding 1 (downsample)',
    x: [1, 2, 8, 8],
    w: [3, 2, 4, 4],
    g: { stride: [2, 2], padding: [1, 1] },
    bias: true,
  },
  { name: '1×1 pointwise', x: [3, 4, 3, 5], w: [6, 4, 1, 1], g: { stride: [1, 1], padding: [0, 0] }, bias: true },
  { name: '1×1 with stride 2', x: [2, 4, 5, 5], w: [3, 4, 1, 1], g: { stride: [2, 2], padding: [0, 0] }, bias: false },
  {
    name: '3×3 valid (no padding)',
    x: [2, 2, 5, 6],
    w: [3, 2, 3, 3],
    g: { stride: [1, 1], padding: [0, 0] },
    bias: true,
  },
  { name: '3×3 padding 3 > k−1', x: [1, 2, 3, 4], w: [2, 2, 3, 3], g: { stride: [1, 1], padding: [3, 3] }, bias: true },
  { name: '5×5 same', x: [2, 2, 6, 6], w: [2, 2, 5, 5], g: { stride: [1, 1], padding: [2, 2] }, bias: false },
  // ≥ 8 channels in and out: 3×3 stride 1 goes through Winograd F(2×2, 3×3) (forward, dx and dw).
  {
    name: 'Winograd 3×3 same, odd height and width',
    x: [2, 8, 7, 5],
    w: [9, 8, 3, 3],
    g: { stride: [1, 1], padding: [1, 1] },
    bias: true,
  },
  { name: 'Winograd 3×3 valid', x: [1, 8, 6, 9], w: [8, 8, 3, 3], g: { stride: [1, 1], padding: [0, 0] }, bias: false },
  {
    name: 'Winograd 3×3 padding (2, 0)',
    x: [1, 10, 5, 6],
    w: [8, 10, 3, 3],
    g: { stride: [1, 1], padding: [2, 0] },
    bias: true,
  },
  {
    name: 'Winograd 3×3 padding 3 (dx falls back to col2im)',
    x: [1, 8, 3, 4],
    w: [8, 8, 3, 3],
    g: { stride: [1, 1], padding: [3, 3] },
    bias: false,
  },
];

for (const c of cases) {
  test(`conv2d ${c.name}: forward matches the definition, gradients match finite differences`, () => {
    const x = randn(c.x, 1, { requiresGrad: true });
    const w = randn(c.w, 2, { requiresGrad: true, std: 0.5 });
    const b = c.bias ? randn([c.w[0]!], 3, { requiresGrad: true }) : null;
    const y = noGrad(() => conv2d(x, w, b, c.g));
    assertClose(y.f32, naiveConv(x, w, b, c.g), { what: 'conv2d forward', atol: 1e-4 });
    // Every gradient element against the definition (gradcheck below samples a few by finite differences).
    const out = conv2d(x, w, b, c.g);
    const dy = randn(out.shape as number[], 4).f32;
    backward(out, dy);
    const ref = naiveConvGrads(x, w, dy, c.g);
    assertClose(x.grad!, ref.dx, { what: 'dx', atol: 1e-4 });
    assertClose(w.grad!, ref.dw, { what: 'dw', atol: 1e-4 });
    if (b) assertClose(b.grad!, ref.db, { what: 'db', atol: 1e-4 });
    gradcheck((xs) => conv2d(xs[0]!, xs[1]!, xs[2] ?? null, c.g), b ? [x, w, b] : [x, w], { maxPerInput: 30 });
  });
}

test('conv2d on many images uses the threaded path and still matches the definition', () => {
  const x = randn([6, 8, 12, 12], 4, { requiresGrad: true });
  const w = randn([8, 8, 3, 3], 5, { requiresGrad: true, std: 0.2 });
  const b = randn([8], 6, { requiresGrad: true });
  const g: Geo = { stride: [1, 1], padding: [1, 1] };
  const y = conv2d(x, w, b, g);
  assertClose(y.f32, naiveConv(x, w, b, g), { what: 'forward', atol: 1e-4 });
  const gy = randn(y.shape as number[], 7).f32;
  backward(y, gy);
  const gx = x.grad!, gw = w.grad!, gb = b.grad!;
  // Same gradients with one thread (serial path): accumulation order differs, values must not.
  const prev = blasInfo().threads;
  blasSetThreads(1);
  try {
    x.grad = w.grad = b.grad = null;
    backward(conv2d(x, w, b, g), gy);
    assertClose(x.grad!, gx, { what: 'dx', atol: 1e-4 });
    assertClose(w.grad!, gw, { what: 'dw', atol: 1e-3 });
    assertClose(b.grad!, gb, { what: 'db', atol: 1e-3 });
  } finally {
    blasSetThreads(prev);
  }
  gradcheck(([a, k]) => conv2d(a!, k!, null, g), [x, w], { maxPerInput: 12 });
});

test('conv2d gradients accumulate into existing gradients', () => {
  const x = randn([1, 2, 4, 4], 8, { requiresGrad: true });
  const w = randn([2, 2, 3, 3], 9, { requiresGrad: true });
  const g = { padding: 1 };
  backward(conv2d(x, w, null, g), new Float32Array(32).fill(1));
  const once = Float32Array.from(x.grad!);
  backward(conv2d(x, w, null, g), new Float32Array(32).fill(1));
  assertClose(x.grad!, once.map((v) => 2 * v));
});

test('conv2d rejects mismatched shapes with a CtfError', () => {
  const x = randn([1, 3, 5, 5], 1);
  assert.throws(
    () => conv2d(x, randn([2, 4, 3, 3], 2)),
    (e: unknown) => e instanceof CtfError && /3 input channels|expects 4/.test(e.message),
  );
  assert.throws(() => conv2d(x, randn([2, 3, 3, 3], 2), randn([3], 3)), CtfError);
  assert.throws(() => conv2d(x, randn([2, 3, 7, 7], 2)), CtfError);
  assert.throws(() => conv2d(randn([3, 5, 5], 1), randn([2, 3, 3, 3], 2)), CtfError);
  assert.throws(() => conv2d(x, randn([2, 3, 3, 3], 2), null, { stride: 0 }), CtfError);
});

test('upsampleNearest2d repeats pixels; its gradient sums blocks', () => {
  const x = randn([2, 3, 2, 3], 10, { requiresGrad: true });
  const y = noGrad(() => upsampleNearest2d(x, 2));
  assert.deepEqual(y.shape, [2, 3, 4, 6]);
  for (let p = 0; p < 6; p++) for (let i = 0; i < 4; i++) for (let j = 0; j < 6; j++)
    assert.equal(y.f32[(p * 4 + i) * 6 + j], x.f32[(p * 2 + (i >> 1)) * 3 + (j >> 1)]);
  gradcheck(([a]) => upsampleNearest2d(a!, 3), [x]);
  assert.throws(() => upsampleNearest2d(x, 1.5), CtfError);
});
