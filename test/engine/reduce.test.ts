import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noGrad } from '../../src/engine/autograd.js';
import { mean, sum } from '../../src/engine/ops/reduce.js';
import { Tensor, tensor } from '../../src/engine/tensor.js';
import { assertClose, gradcheck, randn } from '../helpers.js';

/** Reference: float64 sums by explicit index arithmetic. */
function naiveSum(x: Tensor, axes: number[], keepDim: boolean): { shape: number[]; data: number[] } {
  const red = new Set(axes.map((a) => (a < 0 ? a + x.ndim : a)));
  const kept = x.shape.map((d, i) => (red.has(i) ? 1 : d));
  const data = new Array<number>(kept.reduce((p, d) => p * d, 1)).fill(0);
  for (let i = 0; i < x.size; i++) {
    let rem = i, o = 0, m = 1;
    for (let k = x.ndim - 1; k >= 0; k--) {
      const idx = rem % x.shape[k]!;
      rem = Math.floor(rem / x.shape[k]!);
      o += (red.has(k) ? 0 : idx) * m; m *= kept[k]!;
    }
    data[o] = data[o]! + x.data[i]!;
  }
  return { shape: keepDim ? kept : x.shape.filter((_, i) => !red.has(i)), data };
}

const CASES: [number[], number[] | number | undefined][] = [
  [[3, 4, 5], undefined],
  [[3, 4, 5], -1],
  [[3, 4, 5], 0],
  [[3, 4, 5], [0, 2]],
  [[3, 4, 5], [1]],
  [[2, 3, 4, 5], [-3, -1]],
  [[2, 3, 4, 5], [0, 1, 3]],
  [[7], 0],
];

for (const [shape, axes] of CASES)
  for (const keepDim of [false, true])
    test(`sum/mean ${JSON.stringify(shape)} axes=${JSON.stringify(axes)} keepDim=${keepDim}`, () => {
      const x = randn(shape, 31, { requiresGrad: true });
      const list = axes === undefined ? [...shape.keys()] : typeof axes === 'number' ? [axes] : axes;
      const ref = naiveSum(x, list, keepDim);
      const count = x.size / ref.data.length;
      const s = noGrad(() => sum(x, axes, keepDim)), m = noGrad(() => mean(x, axes, keepDim));
      assert.deepEqual(s.shape, ref.shape);
      assert.deepEqual(m.shape, ref.shape);
      assertClose(s.f32, ref.data);
      assertClose(m.f32, ref.data.map((v) => v / count));
      gradcheck(([t]) => sum(t!, axes, keepDim), [x]);
      gradcheck(([t]) => mean(t!, axes, keepDim), [x]);
    });

test('sum of a large tensor accumulates accurately', () => {
  const n = 1 << 20;
  const x = tensor(new Float32Array(n).fill(0.1), [1024, 1024]);
  assertClose(sum(x).f32, [n * Math.fround(0.1)], { rtol: 1e-6 });
  assertClose(sum(x, 0).f32.slice(0, 3), [102.4, 102.4, 102.4], { rtol: 1e-4 });
});

test('reductions reject bad axes and dtypes', () => {
  const x = randn([2, 3], 1);
  assert.throws(() => sum(x, 2), /sum: axis 2 is out of range for tensor f32\[2,3\]/);
  assert.throws(() => mean(x, [0, -2]), /mean: axes \[0,-2\] repeat an axis/);
  assert.throws(() => sum(new Tensor(new Int32Array(4), [4])), /sum: .* is i32, expected f32/);
});
