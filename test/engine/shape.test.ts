import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noGrad } from '../../src/engine/autograd.js';
import { mul } from '../../src/engine/ops/elementwise.js';
import { concat, permute, reshape, slice, transpose } from '../../src/engine/ops/shape.js';
import { Tensor, intTensor, tensor } from '../../src/engine/tensor.js';
import { gradcheck, randn } from '../helpers.js';

function naivePermute(x: Tensor, perm: number[]): number[] {
  const outShape = perm.map((p) => x.shape[p]!);
  const xs: number[] = [];
  let acc = 1;
  for (let i = x.ndim - 1; i >= 0; i--) { xs[i] = acc; acc *= x.shape[i]!; }
  const out: number[] = [];
  for (let i = 0; i < x.size; i++) {
    let rem = i, off = 0;
    for (let k = outShape.length - 1; k >= 0; k--) {
      off += (rem % outShape[k]!) * xs[perm[k]!]!;
      rem = Math.floor(rem / outShape[k]!);
    }
    out.push(x.data[off]!);
  }
  return out;
}

test('reshape shares the buffer, infers -1, and passes gradients through', () => {
  const x = randn([2, 3, 4], 1, { requiresGrad: true });
  const y = reshape(x, [4, -1]);
  assert.deepEqual(y.shape, [4, 6]);
  assert.equal(y.data, x.data);
  gradcheck(([t]) => mul(reshape(t!, [6, 4]), reshape(t!, [6, 4])), [x]);
  assert.deepEqual(reshape(intTensor([1, 2, 3, 4], [4]), [2, 2]).shape, [2, 2]);
});

test('reshape rejects impossible shapes', () => {
  const x = randn([2, 3], 1);
  assert.throws(() => reshape(x, [4, 2]), /reshape: tensor f32\[2,3\] has 6 elements, shape \[4,2\] needs 8/);
  assert.throws(() => reshape(x, [-1, -1]), /at most one dimension can be -1/);
  assert.throws(() => reshape(x, [4, -1]), /cannot infer the -1/);
});

const PERMS: [number[], number[]][] = [
  [[3, 5], [1, 0]],
  [[37, 53], [1, 0]], // tiled transpose with ragged tiles
  [[2, 3, 4, 5], [0, 2, 1, 3]], // attention-style (B,T,H,hd) -> (B,H,T,hd)
  [[2, 3, 4, 5], [3, 1, 2, 0]],
  [[2, 3, 4, 5], [0, 1, 3, 2]],
  [[4, 1, 6], [2, 1, 0]],
  [[2, 3, 2, 3, 2], [4, 2, 0, 3, 1]],
];

for (const [shape, perm] of PERMS)
  test(`permute ${JSON.stringify(shape)} by ${JSON.stringify(perm)}`, () => {
    const x = randn(shape, 2, { requiresGrad: true });
    const y = noGrad(() => permute(x, perm));
    assert.deepEqual(y.shape, perm.map((p) => shape[p]));
    assert.deepEqual(Array.from(y.f32), naivePermute(x, perm));
    gradcheck(([t]) => permute(t!, perm), [x]);
  });

test('transpose swaps two dims (negative dims count from the end)', () => {
  const x = randn([2, 3, 4], 3, { requiresGrad: true });
  const y = noGrad(() => transpose(x, -1, 0));
  assert.deepEqual(y.shape, [4, 3, 2]);
  assert.deepEqual(Array.from(y.f32), naivePermute(x, [2, 1, 0]));
  gradcheck(([t]) => transpose(t!, 1, 2), [x]);
  assert.throws(() => permute(x, [0, 0, 1]), /permute: \[0,0,1\] is not a permutation/);
  assert.throws(() => transpose(x, 0, 3), /transpose: axis 3 is out of range for tensor f32\[2,3,4\]/);
});

test('slice along each axis, with negative bounds', () => {
  const x = randn([3, 5, 4], 4, { requiresGrad: true });
  const y = noGrad(() => slice(x, 1, 1, -1));
  assert.deepEqual(y.shape, [3, 3, 4]);
  const ref: number[] = [];
  for (let i = 0; i < 3; i++)
    for (let j = 1; j < 4; j++) for (let k = 0; k < 4; k++) ref.push(x.data[i * 20 + j * 4 + k]!);
  assert.deepEqual(Array.from(y.f32), ref);
  assert.deepEqual(Array.from(noGrad(() => slice(x, -1, 3)).f32), Array.from(x.f32).filter((_, i) => i % 4 === 3));
  for (const axis of [0, 1, 2]) gradcheck(([t]) => slice(t!, axis, 1, 3), [x]);
  assert.equal(slice(x, 0, 2, 2).size, 0);
  assert.throws(
    () => slice(x, 1, 2, 7),
    /slice: \[2:7\] along axis 1 is out of range for tensor f32\[3,5,4\] \(size 5\)/,
  );
});

test('concat along an inner axis, and its gradient splits back', () => {
  const a = randn([2, 3, 4], 5, { requiresGrad: true }), b = randn([2, 1, 4], 6, { requiresGrad: true });
  const c = randn([2, 2, 4], 7, { requiresGrad: true });
  const y = noGrad(() => concat([a, b, c], 1));
  assert.deepEqual(y.shape, [2, 6, 4]);
  assert.deepEqual(Array.from(noGrad(() => slice(y, 1, 3, 4)).f32), Array.from(b.f32));
  assert.deepEqual(Array.from(noGrad(() => slice(y, 1, 4)).f32), Array.from(c.f32));
  gradcheck((xs) => concat(xs, -2), [a, b, c]);
  gradcheck(([p, q]) => concat([p!, q!], 0), [a, randn([3, 3, 4], 8, { requiresGrad: true })]);
  assert.throws(
    () => concat([a, c], 2),
    /concat: tensor f32\[2,2,4\] does not match tensor f32\[2,3,4\] \(the dtype and every dim but axis 2 must agree\)/,
  );
  assert.throws(() => concat([], 0), /concat: needs at least one tensor/);
});

test('slice, concat and permute copy i32 tensors bit for bit', () => {
  // Values whose bits are float NaNs (signalling and quiet) and denormals must survive the f32 kernels.
  const vals = [0x7f800001, -1, -2147483648, 1, 0x00000003, 0x7fc00000, 42, -7];
  const ids = intTensor(vals, [2, 4], 'ids');
  const t = noGrad(() => permute(ids, [1, 0]));
  assert.equal(t.dtype, 'i32');
  assert.deepEqual(Array.from(t.i32), [vals[0], vals[4], vals[1], vals[5], vals[2], vals[6], vals[3], vals[7]]);
  assert.deepEqual(Array.from(slice(ids, 1, 1, 3).i32), [vals[1], vals[2], vals[5], vals[6]]);
  const c = concat([ids, slice(ids, 0, 0, 1)], 0);
  assert.equal(c.dtype, 'i32');
  assert.deepEqual(Array.from(c.i32), [...vals, ...vals.slice(0, 4)]);
  assert.throws(
    () => concat([ids, tensor(vals, [2, 4])], 0),
    /concat: tensor f32\[2,4\] does not match ids i32\[2,4\]/,
  );
});
