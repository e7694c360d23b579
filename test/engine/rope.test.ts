import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad } from '../../src/engine/autograd.js';
import { rope2d, ropeRows, ropeTable2d } from '../../src/engine/ops/rope.js';
import { assertClose, gradcheck, randn } from '../helpers.js';

test('ropeTable2d: class row zero, then row angles on the first half of pairs and column angles on the rest', () => {
  const grid = 3, hd = 8, t = ropeTable2d(grid, hd);
  assert.equal(t.rows, 1 + grid * grid);
  for (let j = 0; j < hd / 2; j++) { assert.equal(t.cos[j], 0); assert.equal(t.sin[j], 0); }
  // half = 4, freq_j = 10000^(-2j/4) for j < 2: [1, 0.01]
  const freqs = [1, 0.01];
  for (let r = 0; r < grid; r++) for (let c = 0; c < grid; c++) {
    const p = 1 + r * grid + c;
    const angles = [r * freqs[0]!, r * freqs[1]!, c * freqs[0]!, c * freqs[1]!];
    angles.forEach((a, j) => {
      assert.ok(Math.abs(t.cos[p * 4 + j]! - Math.cos(a)) < 1e-6);
      assert.ok(Math.abs(t.sin[p * 4 + j]! - Math.sin(a)) < 1e-6);
    });
  }
  assert.throws(() => ropeTable2d(4, 6), /multiple of 4/);
  assert.throws(() => ropeRows(t, 5, 6), /outside the table/);
});

test('rope2d: pairs rotate by the table angle, class position becomes zero, norms of grid rows are kept', () => {
  const B = 2, grid = 2, T = 5, H = 3, hd = 8;
  const table = ropeTable2d(grid, hd);
  const x = randn([B, T, H, hd], 1);
  const y = noGrad(() => rope2d(x, table));
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
    const o = ((b * T + t) * H + h) * hd;
    let nx = 0, ny = 0;
    for (let d = 0; d < hd; d++) { nx += x.f32[o + d]! ** 2; ny += y.f32[o + d]! ** 2; }
    if (t === 0) assert.equal(ny, 0);
    else assert.ok(Math.abs(nx - ny) < 1e-4 * nx);
    for (let j = 0; j < hd / 2; j++) {
      const c = table.cos[t * 4 + j]!, s = table.sin[t * 4 + j]!;
      assertClose([y.f32[o + 2 * j]!, y.f32[o + 2 * j + 1]!],
        [x.f32[o + 2 * j]! * c - x.f32[o + 2 * j + 1]! * s, x.f32[o + 2 * j + 1]! * c + x.f32[o + 2 * j]! * s]);
    }
  }
});

test('rope2d gradient (inverse rotation; zero at the class position)', () => {
  const table = ropeTable2d(2, 8);
  const x = randn([2, 5, 2, 8], 2, { requiresGrad: true });
  gradcheck(([a]) => rope2d(a!, table), [x], { maxPerInput: 160 });
  gradcheck(([a]) => rope2d(a!, table), [randn([1, 3, 1, 8], 3, { requiresGrad: true })]);
});
