import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noGrad } from '../../src/engine/autograd.js';
import { embedding } from '../../src/engine/ops/embedding.js';
import { intTensor, tensor } from '../../src/engine/tensor.js';
import { gradcheck, randn } from '../helpers.js';

test('embedding gathers rows into (..., D)', () => {
  const table = randn([5, 3], 1);
  const ids = intTensor([4, 0, 4, 2, 1, 1], [2, 3]);
  const y = noGrad(() => embedding(table, ids));
  assert.deepEqual(y.shape, [2, 3, 3]);
  const ref = Array.from(ids.i32).flatMap((i) => Array.from(table.f32.slice(i * 3, i * 3 + 3)));
  assert.deepEqual(Array.from(y.f32), ref);
});

test('embedding backward scatter-adds, repeated ids accumulate', () => {
  const table = randn([6, 4], 2, { requiresGrad: true });
  const ids = intTensor([5, 1, 5, 5, 0, 1, 3], [7]);
  gradcheck(([t]) => embedding(t!, ids), [table]);
  // Rows never looked up get no gradient.
  const g = table.grad!;
  assert.ok(g.slice(2 * 4, 3 * 4).every((v) => v === 0) && g.slice(4 * 4, 5 * 4).every((v) => v === 0));
});

test('embedding rejects out-of-range ids, naming the id, its position and the table size', () => {
  const table = randn([5, 3], 1);
  table.name = 'tokEmb';
  assert.throws(() => embedding(table, intTensor([0, 1, 2, 5, 1, 0], [2, 3], 'ids')),
    /embedding: id 5 at position \[1,0\] of ids i32\[2,3\] is out of range for tokEmb f32\[5,3\] \(5 rows/);
  assert.throws(() => embedding(table, intTensor([-1], [1])), /id -1 at position \[0\]/);
  assert.throws(() => embedding(table, tensor([1], [1])), /embedding: ids tensor f32\[1\] must be i32/);
  assert.throws(
    () => embedding(randn([5], 1), intTensor([1], [1])),
    /embedding: table tensor f32\[5\] must be an f32 \(V, D\) matrix/,
  );
});
