import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constantLr, warmupCosine } from '../../src/engine/schedule.js';
import { CtfError } from '../../src/errors.js';

const close = (a: number, b: number): void => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

test('constantLr: flat, or linear warmup to lr', () => {
  close(constantLr(0, { lr: 1e-4 }), 1e-4);
  close(constantLr(123456, { lr: 1e-4 }), 1e-4);
  close(constantLr(0, { lr: 1e-4, warmup: 10 }), 1e-5);
  close(constantLr(9, { lr: 1e-4, warmup: 10 }), 1e-4);
  close(constantLr(10, { lr: 1e-4, warmup: 10 }), 1e-4);
});

test('warmupCosine at its boundary steps', () => {
  const o = { warmup: 10, total: 110, lr: 1e-3, minLr: 1e-5 };
  close(warmupCosine(0, o), 1e-4);
  close(warmupCosine(4, o), 5e-4);
  close(warmupCosine(9, o), 1e-3);
  close(warmupCosine(10, o), 1e-3);
  close(warmupCosine(60, o), (1e-3 + 1e-5) / 2);
  close(warmupCosine(109, o), 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + Math.cos(Math.PI * 99 / 100)));
  close(warmupCosine(110, o), 1e-5);
  close(warmupCosine(10_000, o), 1e-5);
  // Monotone non-increasing after warmup.
  for (let s = 10; s < 120; s++) assert.ok(warmupCosine(s + 1, o) <= warmupCosine(s, o));
  close(warmupCosine(0, { warmup: 0, total: 100, lr: 2 }), 2);
  close(warmupCosine(100, { warmup: 0, total: 100, lr: 2 }), 0);
  close(warmupCosine(5, { warmup: 10, total: 10, lr: 2 }), 1.2);
});

test('schedules reject bad arguments', () => {
  assert.throws(() => warmupCosine(-1, { warmup: 1, total: 2, lr: 1 }), CtfError);
  assert.throws(() => warmupCosine(0, { warmup: 5, total: 2, lr: 1 }), CtfError);
  assert.throws(() => warmupCosine(0, { warmup: 1, total: 2, lr: 1, minLr: 2 }), CtfError);
  assert.throws(() => constantLr(1.5, { lr: 1 }), CtfError);
});
