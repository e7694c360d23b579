// Shared test utilities: finite-difference gradient checks and closeness assertions.
import assert from 'node:assert/strict';
import { backward, noGrad } from '../src/engine/autograd.js';
import { Rng } from '../src/engine/rng.js';
import { Tensor } from '../src/engine/tensor.js';
import type { RandomRunOptions } from '../src/bench/sample-bench.js';
import { CtfError } from '../src/errors.js';

export function randn(shape: number[], seed: number, opts: { requiresGrad?: boolean; std?: number } = {}): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = new Tensor(new Rng(seed).fillNormal(new Float32Array(n), 0, opts.std ?? 1), shape, {
    requiresGrad: opts.requiresGrad,
  });
  return t;
}

/** Asserts |a - b| ≤ atol + rtol·|b| elementwise, naming the worst element. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  o: { atol?: number; rtol?: number; what?: string } = {},
): void {
  const atol = o.atol ?? 1e-5,
    rtol = o.rtol ?? 1e-4;
  assert.equal(actual.length, expected.length, `${o.what ?? 'arrays'}: length ${actual.length} vs ${expected.length}`);
  let worst = -1,
    worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!,
      e = expected[i]!;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0)
    assert.fail(
      `${o.what ?? 'arrays'}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ` +
      `${rtol})`,
    );
}

/**
 * Central finite differences of L = Σ out·w (w fixed random, summed in float64) against backward().
 * Checks up to maxPerInput elements of every input that requires grad.
 */
export function gradcheck(
  f: (xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  o: { eps?: number; atol?: number; rtol?: number; maxPerInput?: number; seed?: number } = {},
): void {
  const eps = o.eps ?? 1e-2,
    atol = o.atol ?? 2e-3,
    rtol = o.rtol ?? 2e-2,
    maxPer = o.maxPerInput ?? 40;
  const out = f(inputs);
  const w = new Rng(o.seed ?? 99).fillNormal(new Float32Array(out.size));
  for (const x of inputs) x.grad = null;
  backward(out, w);
  const loss = (): number =>
    noGrad(() => {
      const y = f(inputs).f32;
      let s = 0;
      for (let i = 0; i < y.length; i++) s += y[i]! * w[i]!;
      return s;
    });
  const pick = new Rng(7);
  inputs.forEach((x, xi) => {
    if (!x.requiresGrad) return;
    const g = x.grad ?? new Float32Array(x.size);
    const idx = x.size <= maxPer ? [...Array(x.size).keys()] : Array.from({ length: maxPer }, () => pick.int(x.size));
    const num: number[] = [],
      ana: number[] = [];
    const d = x.f32;
    for (const i of idx) {
      const v = d[i]!;
      d[i] = v + eps;
      const lp = loss();
      d[i] = v - eps;
      const lm = loss();
      d[i] = v;
      num.push((lp - lm) / (2 * eps));
      ana.push(g[i]!);
    }
    assertClose(ana, num, { atol, rtol, what: `gradient of input ${xi} (${x.describe()})` });
  });
}

/** Asserts fn throws a CtfError whose message matches re (a failure shows the message it got). */
export function throwsCtf(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, isCtfError(re));
}

/** The async twin of throwsCtf. */
export async function rejectsCtf(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, isCtfError(re));
}

function isCtfError(re: RegExp): (e: unknown) => true {
  return (e) => {
    assert.ok(e instanceof CtfError, `expected a CtfError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  };
}

/** A run of random weights small enough for a test: tiny presets, V 64, K 8, Fashion-MNIST's shape (writeRandomRun). */
export const TINY_RUN: RandomRunOptions = {
  tokenizerPreset: 'tiny', codebook: 64, k: 8, preset: 'tiny', auxPreset: 'tiny', numClasses: 10, imageSize: 32,
};
