import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward, noGrad } from '../../src/engine/autograd.js';
import { add, mulScalar } from '../../src/engine/ops/elementwise.js';
import { crossEntropy, logSoftmax, softmax } from '../../src/engine/ops/softmax.js';
import { Tensor, intTensor, tensor } from '../../src/engine/tensor.js';
import { assertClose, gradcheck, randn } from '../helpers.js';

/** Reference log-softmax of each row, in float64. */
function naiveLogSoftmax(x: ArrayLike<number>, V: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / V; r++) {
    const row = Array.from({ length: V }, (_, j) => x[r * V + j]!);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    out.push(...row.map((v) => v - lse));
  }
  return out;
}

function naiveCrossEntropy(x: ArrayLike<number>, t: ArrayLike<number>, V: number, ignore?: number): number {
  const ls = naiveLogSoftmax(x, V);
  let s = 0, n = 0;
  for (let r = 0; r < t.length; r++) if (t[r] !== ignore) { s -= ls[r * V + t[r]!]!; n++; }
  return s / n;
}

test('softmax and logSoftmax match the reference, rows sum to 1, large logits stay finite', () => {
  const x = randn([3, 4, 37], 1, { std: 3 });
  x.f32[5] = 1000; x.f32[40] = -1000; // max-shift keeps these exact
  const ls = naiveLogSoftmax(x.f32, 37);
  assertClose(logSoftmax(x).f32, ls, { atol: 1e-5 });
  const p = softmax(x).f32;
  assertClose(p, ls.map(Math.exp), { atol: 1e-6 });
  for (let r = 0; r < 12; r++)
    assertClose([p.slice(r * 37, r * 37 + 37).reduce((a, b) => a + b, 0)], [1], { atol: 1e-6 });
});

test('softmax and logSoftmax gradients', () => {
  const x = randn([2, 3, 7], 2, { requiresGrad: true });
  gradcheck(([t]) => softmax(t!), [x]);
  gradcheck(([t]) => logSoftmax(t!), [x]);
  const wide = randn([2, 515], 3, { requiresGrad: true });
  gradcheck(([t]) => logSoftmax(t!), [wide], { maxPerInput: 20 });
});

test('crossEntropy: value and gradient (softmax − onehot)/N', () => {
  const V = 11, N = 6;
  const logits = randn([2, 3, V], 4, { requiresGrad: true, std: 2 });
  const targets = intTensor([0, 10, 3, 3, 7, 1], [2, 3]);
  const loss = crossEntropy(logits, targets);
  assert.deepEqual(loss.shape, []);
  assertClose(loss.f32, [naiveCrossEntropy(logits.f32, targets.i32, V)]);
  backward(loss);
  const p = naiveLogSoftmax(logits.f32, V).map(Math.exp);
  const ref = p.map((v, i) => (v - (targets.i32[Math.floor(i / V)] === i % V ? 1 : 0)) / N);
  assertClose(logits.grad!, ref, { atol: 1e-6 });
  gradcheck(([t]) => crossEntropy(t!, targets), [logits]);
});

test('crossEntropy with ignoreIndex: ignored rows get no loss, no gradient, and do not count', () => {
  const V = 9;
  const logits = randn([5, V], 5, { requiresGrad: true });
  const targets = intTensor([2, -100, 8, -100, 0], [5]);
  const loss = crossEntropy(logits, targets, { ignoreIndex: -100 });
  assertClose(loss.f32, [naiveCrossEntropy(logits.f32, targets.i32, V, -100)]);
  backward(loss);
  assert.ok(logits.grad!.slice(V, 2 * V).every((v) => v === 0));
  gradcheck(([t]) => crossEntropy(t!, targets, { ignoreIndex: -100 }), [logits]);
  // A valid class can be the ignored one too (PyTorch allows it).
  gradcheck(([t]) => crossEntropy(t!, intTensor([2, 3, 8, 3, 0], [5]), { ignoreIndex: 3 }), [logits]);
  assert.ok(
    Number.isNaN(crossEntropy(logits, intTensor([-100, -100, -100, -100, -100], [5]), { ignoreIndex: -100 }).item()),
  );
});

test('crossEntropy gradient accumulates when the logits are used twice and scales with the upstream gradient', () => {
  const logits = randn([4, 6], 6, { requiresGrad: true });
  const t1 = intTensor([0, 1, 2, 3], [4]), t2 = intTensor([5, 4, 3, 2], [4]);
  gradcheck(([t]) => add(mulScalar(crossEntropy(t!, t1), 3), crossEntropy(t!, t2)), [logits]);
  gradcheck(([t]) => crossEntropy(add(t!, t!), t1), [logits]);
});

test('crossEntropy without gradients allocates nothing logits-sized and gives the same loss', () => {
  const logits = randn([8, 33], 7, { requiresGrad: true });
  const targets = intTensor([1, 2, 3, 4, 5, 6, 7, 8], [8]);
  const a = noGrad(() => crossEntropy(logits, targets)).item();
  const b = crossEntropy(logits, targets).item();
  assert.equal(a, b);
  assertClose([a], [naiveCrossEntropy(logits.f32, targets.i32, 33)]);
});

test('crossEntropy rejects bad targets', () => {
  const logits = randn([2, 3, 4], 8);
  logits.name = 'logits';
  assert.throws(() => crossEntropy(logits, intTensor([0, 1, 2, 3, 4, 0], [2, 3], 'targets')),
    new RegExp(
      'crossEntropy: target 4 at position \\[1,1\\] of targets i32\\[2,3\\] is out of range for logits ' +
        'logits f32\\[2,3,4\\] \\(classes 0\\.\\.3\\)',
    ));
  assert.throws(() => crossEntropy(logits, intTensor([0, 1, -100, 3, 0, 0], [2, 3]), { ignoreIndex: -1 }),
    /target -100 at position \[0,2\].*or ignoreIndex -1/);
  assert.throws(
    () => crossEntropy(logits, intTensor([0, 1, 2], [3])),
    /crossEntropy: targets tensor i32\[3\] must have shape \[2,3\]/,
  );
  assert.throws(
    () => crossEntropy(logits, tensor([0, 1, 2, 0, 1, 2], [2, 3])),
    /crossEntropy: targets tensor f32\[2,3\] must be i32/,
  );
  assert.throws(() => softmax(new Tensor(new Int32Array(3), [3])), /softmax: tensor i32\[3\] must be an f32 tensor/);
});
