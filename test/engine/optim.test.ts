import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdamW, clipGradNorm } from '../../src/engine/optim.js';
import { Tensor } from '../../src/engine/tensor.js';
import { CtfError } from '../../src/errors.js';
import { assertClose, randn } from '../helpers.js';

// torch.optim.AdamW in float64, one parameter.
class RefAdamW {
  m: number[]; v: number[]; t = 0;
  constructor(public p: number[], readonly o: { lr: number; b1: number; b2: number; eps: number; wd: number }) {
    this.m = p.map(() => 0); this.v = p.map(() => 0);
  }
  step(g: ArrayLike<number>, lr = this.o.lr): void {
    const { b1, b2, eps, wd } = this.o;
    this.t++;
    const bc1 = 1 - b1 ** this.t, bc2 = 1 - b2 ** this.t;
    this.p = this.p.map((p, i) => {
      const gi = g[i]!;
      this.m[i] = b1 * this.m[i]! + (1 - b1) * gi;
      this.v[i] = b2 * this.v[i]! + (1 - b2) * gi * gi;
      return p * (1 - lr * wd) - (lr / bc1) * this.m[i]! / (Math.sqrt(this.v[i]!) / Math.sqrt(bc2) + eps);
    });
  }
}

function params(): { w: Tensor; b: Tensor } {
  return { w: randn([3, 4], 1, { requiresGrad: true }), b: randn([4], 2, { requiresGrad: true }) };
}

test('AdamW first step: decoupled decay on the matrix only, then ≈ lr·sign(g) (bias-corrected)', () => {
  const { w, b } = params();
  const w0 = Float32Array.from(w.f32), b0 = Float32Array.from(b.f32);
  const opt = new AdamW({ 'w': w, 'b': b }, { lr: 0.01, weightDecay: 0.1 });
  assert.deepEqual(opt.decayed(), ['w']);
  w.grad = randn([3, 4], 3).f32;
  b.grad = randn([4], 4).f32;
  const gw = w.grad, gb = b.grad;
  opt.step();
  assertClose(w.f32, Array.from(w0, (p, i) => p * (1 - 0.01 * 0.1) - 0.01 * Math.sign(gw[i]!)), { atol: 1e-6 });
  assertClose(b.f32, Array.from(b0, (p, i) => p - 0.01 * Math.sign(gb[i]!)), { atol: 1e-6 });
});

test('AdamW several steps match a float64 reference (betas, eps, lr override, weight decay)', () => {
  const { w, b } = params();
  const o = { lr: 3e-3, b1: 0.8, b2: 0.9, eps: 1e-3, wd: 0.2 };
  const rw = new RefAdamW(Array.from(w.f32), o), rb = new RefAdamW(Array.from(b.f32), { ...o, wd: 0 });
  const opt = new AdamW([w, b], { lr: o.lr, betas: [o.b1, o.b2], eps: o.eps, weightDecay: o.wd });
  for (let s = 0; s < 5; s++) {
    const lr = s === 3 ? 1e-2 : o.lr;
    w.grad = randn([3, 4], 10 + s).f32;
    b.grad = randn([4], 20 + s, { std: 0.01 }).f32;
    rw.step(w.grad, lr);
    rb.step(b.grad, lr);
    opt.step(lr);
  }
  assert.equal(opt.stepCount, 5);
  assertClose(w.f32, rw.p, { atol: 1e-6, rtol: 1e-5, what: 'matrix' });
  assertClose(b.f32, rb.p, { atol: 1e-6, rtol: 1e-5, what: 'bias' });
  const st = opt.stateDict();
  assertClose(st.expAvg['param.0']!, rw.m, { atol: 1e-7, what: 'm' });
  assertClose(st.expAvgSq['param.1']!, rb.v, { atol: 1e-9, what: 'v' });
});

test('AdamW stateDict/loadStateDict resumes bit-exactly; zeroGrad keeps or drops buffers', () => {
  const grads = (s: number): [Float32Array, Float32Array] => [randn([3, 4], 30 + s).f32, randn([4], 40 + s).f32];
  const a = params(), c = params();
  const optA = new AdamW({ w: a.w, b: a.b }, { lr: 1e-2 });
  for (let s = 0; s < 4; s++) { [a.w.grad, a.b.grad] = grads(s); optA.step(); }

  const optC = new AdamW({ w: c.w, b: c.b }, { lr: 1e-2 });
  for (let s = 0; s < 2; s++) { [c.w.grad, c.b.grad] = grads(s); optC.step(); }
  const saved = optC.stateDict(), pw = Float32Array.from(c.w.f32), pb = Float32Array.from(c.b.f32);
  optC.step();  // a step after saving must not leak into the saved copy
  const d = params();
  d.w.f32.set(pw); d.b.f32.set(pb);
  const optD = new AdamW({ w: d.w, b: d.b }, { lr: 1e-2 });
  optD.loadStateDict(saved);
  for (let s = 2; s < 4; s++) { [d.w.grad, d.b.grad] = grads(s); optD.step(); }
  assert.deepEqual(d.w.f32, a.w.f32);
  assert.deepEqual(d.b.f32, a.b.f32);

  const buf = d.w.grad!;
  optD.zeroGrad();
  assert.equal(d.w.grad, buf);
  assert.ok(buf.every((v) => v === 0));
  optD.zeroGrad(true);
  assert.equal(d.w.grad, null);
  const before = Float32Array.from(d.w.f32);
  optD.step();  // no gradients: nothing moves
  assert.deepEqual(d.w.f32, before);

  assert.throws(
    () => optD.loadStateDict({ ...saved, expAvg: { ...saved.expAvg, extra: new Float32Array(1) } }),
    CtfError,
  );
  assert.throws(
    () => optD.loadStateDict({ ...saved, expAvgSq: { w: new Float32Array(2), b: new Float32Array(4) } }),
    CtfError,
  );
  assert.throws(() => new AdamW([a.w, a.w], { lr: 1 }), CtfError);
});

test('clipGradNorm returns the global norm and scales like torch only above maxNorm', () => {
  const a = new Tensor(new Float32Array([3, 0]), [2], { requiresGrad: true });
  const b = new Tensor(new Float32Array([0, 0, 4]), [3], { requiresGrad: true });
  const c = new Tensor(new Float32Array(2), [2], { requiresGrad: true });  // no gradient: ignored
  a.grad = new Float32Array([3, 0]);
  b.grad = new Float32Array([0, 0, 4]);
  assert.equal(clipGradNorm([a, b, c], 10), 5);
  assert.deepEqual(Array.from(a.grad), [3, 0]);
  assert.equal(clipGradNorm([a, b, c], 1), 5);
  const coef = 1 / (5 + 1e-6);
  assertClose(a.grad, [3 * coef, 0], { atol: 1e-7 });
  assertClose(b.grad, [0, 0, 4 * coef], { atol: 1e-7 });
  assert.equal(c.grad, null);
  assert.ok(Math.abs(clipGradNorm([a, b], 1) - 1) < 1e-6);
  // Many small values: the norm is accumulated in float64.
  const big = new Tensor(new Float32Array(1 << 20).fill(1e-3), [1 << 20], { requiresGrad: true });
  big.grad = Float32Array.from(big.f32);
  assert.ok(Math.abs(clipGradNorm([big], 100) - Math.sqrt((1 << 20) * Math.fround(1e-3) ** 2)) < 1e-9);
});
