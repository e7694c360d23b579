import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../../src/engine/autograd.js';
import { attention, selfAttentionQkv } from '../../src/engine/ops/attention.js';
import { ropeTable2d } from '../../src/engine/ops/rope.js';
import { Tensor } from '../../src/engine/tensor.js';
import { assertClose, gradcheck, randn } from '../helpers.js';

/** float64 reference: q, k, v (B, H, T, hd) row-major; mask (T, T) or per batch (B, T, T). */
function naiveAttention(q: Float32Array, k: Float32Array, v: Float32Array, B: number, H: number, T: number, hd: number,
  causal: boolean, mask?: Float32Array, maskPerBatch = false): number[] {
  const out = new Array<number>(B * H * T * hd).fill(0);
  const scale = 1 / Math.sqrt(hd);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const base = (b * H + h) * T * hd;
    for (let i = 0; i < T; i++) {
      const s: number[] = [];
      for (let j = 0; j < T; j++) {
        let dot = 0;
        for (let d = 0; d < hd; d++) dot += q[base + i * hd + d]! * k[base + j * hd + d]!;
        let x = dot * scale + (mask ? mask[(maskPerBatch ? b * T * T : 0) + i * T + j]! : 0);
        if (causal && j > i) x = -Infinity;
        s.push(x);
      }
      const mx = Math.max(...s);
      const e = s.map((x) => Math.exp(x - mx));
      const z = e.reduce((a, c) => a + c, 0);
      for (let j = 0; j < T; j++)
        for (let d = 0; d < hd; d++) out[base + i * hd + d]! += (e[j]! / z) * v[base + j * hd + d]!;
    }
  }
  return out;
}

for (const causal of [true, false]) {
  test(`attention (B,H,T,hd) causal=${causal}: forward matches a float64 reference, gradients check`, () => {
    const B = 2, H = 3, T = 5, hd = 4;
    const q = randn([B, H, T, hd], 1, { requiresGrad: true });
    const k = randn([B, H, T, hd], 2, { requiresGrad: true });
    const v = randn([B, H, T, hd], 3, { requiresGrad: true });
    const y = noGrad(() => attention(q, k, v, { causal }));
    assertClose(y.f32, naiveAttention(q.f32, k.f32, v.f32, B, H, T, hd, causal), { atol: 1e-5 });
    gradcheck(([a, b, c]) => attention(a!, b!, c!, { causal }), [q, k, v], { eps: 1e-2 });
  });
}

test('attention with additive masks (T,T) and (B,1,T,T)', () => {
  const B = 2, H = 2, T = 4, hd = 6;
  const q = randn([B, H, T, hd], 4, { requiresGrad: true });
  const k = randn([B, H, T, hd], 5, { requiresGrad: true });
  const v = randn([B, H, T, hd], 6, { requiresGrad: true });
  const m2 = randn([T, T], 7);
  m2.f32[1] = -Infinity; // row 0 never sees key 1
  const m4 = randn([B, 1, T, T], 8);
  const y2 = noGrad(() => attention(q, k, v, { causal: false, mask: m2 }));
  assertClose(y2.f32, naiveAttention(q.f32, k.f32, v.f32, B, H, T, hd, false, m2.f32), { atol: 1e-5 });
  const y4 = noGrad(() => attention(q, k, v, { causal: true, mask: m4 }));
  assertClose(y4.f32, naiveAttention(q.f32, k.f32, v.f32, B, H, T, hd, true, m4.f32, true), { atol: 1e-5 });
  gradcheck(([a, b, c]) => attention(a!, b!, c!, { causal: false, mask: m2 }), [q, k, v]);
  gradcheck(([a, b, c]) => attention(a!, b!, c!, { causal: true, mask: m4 }), [q, k, v]);
  assert.throws(() => attention(q, k, v, { causal: false, mask: randn([T, T + 1], 9) }), /mask .* must be/);
});

/** Rotates x (B, T, H, hd) by table rows in float64, for the reference path. */
function naiveRope(
  x: Float32Array,
  cos: Float32Array,
  sin: Float32Array,
  B: number,
  T: number,
  H: number,
  hd: number,
): Float32Array {
  const y = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++)
        for (let j = 0; j < hd / 2; j++) {
          const i = ((b * T + t) * H + h) * hd + 2 * j,
            c = cos[(t * hd) / 2 + j]!,
            s = sin[(t * hd) / 2 + j]!;
          y[i] = x[i]! * c - x[i + 1]! * s;
          y[i + 1] = x[i + 1]! * c + x[i]! * s;
        }
  return y;
}

for (const causal of [true, false]) {
  test(`selfAttentionQkv (fused qkv, RoPE) causal=${causal} equals permute + rope + attention; gradients check`, () => {
    const B = 2, H = 2, hd = 8, grid = 2, T = 1 + grid * grid, D = H * hd;
    const table = ropeTable2d(grid, hd);
    const qkv = randn([B, T, 3 * D], 11, { requiresGrad: true });
    const y = noGrad(() => selfAttentionQkv(qkv, { heads: H, causal, rope: table }));
    // Reference: split, rotate q and k, permute to (B, H, T, hd), attend, permute back.
    const part = (p: number): Float32Array => {
      const r = new Float32Array(B * T * D);
      for (let bt = 0; bt < B * T; bt++) for (let c = 0; c < D; c++) r[bt * D + c] = qkv.f32[bt * 3 * D + p * D + c]!;
      return r;
    };
    const toBHTD = (x: Float32Array): Float32Array => {
      const r = new Float32Array(x.length);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) for (let d = 0; d < hd; d++)
        r[((b * H + h) * T + t) * hd + d] = x[((b * T + t) * H + h) * hd + d]!;
      return r;
    };
    const q = toBHTD(naiveRope(part(0), table.cos, table.sin, B, T, H, hd));
    const k = toBHTD(naiveRope(part(1), table.cos, table.sin, B, T, H, hd));
    const ref = naiveAttention(q, k, toBHTD(part(2)), B, H, T, hd, causal);
    const refBTD = new Array<number>(ref.length);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) for (let d = 0; d < hd; d++)
      refBTD[((b * T + t) * H + h) * hd + d] = ref[((b * H + h) * T + t) * hd + d]!;
    assertClose(y.f32, refBTD, { atol: 1e-5 });
    gradcheck(([x]) => selfAttentionQkv(x!, { heads: H, causal, rope: table }), [qkv], { maxPerInput: 80 });
  });
}

test('selfAttentionQkv: class position has zero q/k, so its row attends uniformly (bidirectional)', () => {
  const B = 1, H = 1, hd = 4, grid = 2, T = 5, D = 4;
  const qkv = randn([B, T, 3 * D], 12);
  const y = selfAttentionQkv(qkv, { heads: H, causal: false, rope: ropeTable2d(grid, hd) });
  for (let d = 0; d < D; d++) {
    let mean = 0;
    for (let t = 0; t < T; t++) mean += qkv.f32[t * 3 * D + 2 * D + d]! / T;
    assert.ok(Math.abs(y.f32[d]! - mean) < 1e-5, `class row output ${y.f32[d]} vs mean of v ${mean}`);
  }
  assert.throws(
    () => selfAttentionQkv(new Tensor(new Float32Array(10), [1, 1, 10]), { heads: 2, causal: true }),
    /3·heads·hd/,
  );
});

for (const causal of [true, false]) {
  test(`attention at block-kernel sizes (T=37, hd=32, and T=65, hd=16) causal=${causal}`, () => {
    for (const [B, H, T, hd] of [[1, 2, 37, 32], [2, 1, 65, 16]] as const) {
      const q = randn([B, H, T, hd], 21, { requiresGrad: true });
      const k = randn([B, H, T, hd], 22, { requiresGrad: true });
      const v = randn([B, H, T, hd], 23, { requiresGrad: true });
      const y = noGrad(() => attention(q, k, v, { causal }));
      assertClose(y.f32, naiveAttention(q.f32, k.f32, v.f32, B, H, T, hd, causal), { atol: 2e-5 });
      gradcheck(([a, b, c]) => attention(a!, b!, c!, { causal }), [q, k, v], { maxPerInput: 30 });
    }
  });
}
