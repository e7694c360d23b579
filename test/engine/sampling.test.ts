import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/engine/rng.js';
import { nearestRows, sampleLogits, sampleRow } from '../../src/engine/sampling.js';
import { Tensor } from '../../src/engine/tensor.js';
import { CtfError } from '../../src/errors.js';
import { randn } from '../helpers.js';

const rngs = (n: number, seed = 1): Rng[] => Array.from({ length: n }, (_, i) => new Rng(seed).split(i));

function softmax(l: ArrayLike<number>, t = 1): number[] {
  const mx = Math.max(...Array.from(l));
  const e = Array.from(l, (v) => Math.exp((v - mx) / t));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

// Repeats one row of logits n times.
function tile(row: number[], n: number): Float32Array {
  const out = new Float32Array(row.length * n);
  for (let r = 0; r < n; r++) out.set(row, r * row.length);
  return out;
}

// Draws `rows` samples of one distribution and checks frequencies against probs with a chi-square bound.
function checkFrequencies(
  row: number[],
  probs: number[],
  o: Parameters<typeof sampleRow>[1],
  rows = 20000,
  seed = 3,
): void {
  const V = row.length;
  const tokens = sampleLogits(tile(row, rows), rows, V, o, rngs(rows, seed));
  const counts = new Array<number>(V).fill(0);
  for (const t of tokens) counts[t]!++;
  let chi2 = 0,
    dof = -1;
  for (let i = 0; i < V; i++) {
    if (probs[i] === 0) {
      assert.equal(counts[i], 0, `token ${i} has probability 0 but was drawn ${counts[i]} times`);
      continue;
    }
    chi2 += (counts[i]! - rows * probs[i]!) ** 2 / (rows * probs[i]!);
    dof++;
  }
  // mean dof, sd sqrt(2 dof): 5 sd is a false alarm about once in millions of runs (and the seeds are fixed).
  assert.ok(
    chi2 < dof + 5 * Math.sqrt(2 * Math.max(dof, 1)) + 5,
    `chi² ${chi2.toFixed(1)} with ${dof} dof; counts ${counts}`,
  );
}

const row = [1.0, 2.5, -0.5, 2.5, 0.3, 1.7, -3, 0.9];

test('greedy: temperature 0 and topK 1 give the argmax (lowest index among ties)', () => {
  const logits = randn([50, 37], 1).f32;
  const t0 = sampleLogits(logits, 50, 37, { temperature: 0 }, rngs(50));
  const k1 = sampleLogits(logits, 50, 37, { topK: 1, temperature: 2 }, rngs(50));
  for (let r = 0; r < 50; r++) {
    const l = Array.from(logits.subarray(r * 37, (r + 1) * 37));
    assert.equal(t0[r], l.indexOf(Math.max(...l)));
    assert.equal(k1[r], t0[r]);
  }
  assert.equal(sampleRow(Float32Array.from(row), { temperature: 0 }, new Rng(0)), 1);
  // Temperature → 0 behaves greedy without special-casing.
  const cold = sampleLogits(tile(row, 200), 200, row.length, { temperature: 1e-4 }, rngs(200));
  assert.ok(cold.every((t) => t === 1 || t === 3), 'a near-zero temperature only picks the tied maxima');
});

test('multinomial frequencies match softmax probabilities (with temperature)', () => {
  checkFrequencies(row, softmax(row), {});
  checkFrequencies(row, softmax(row, 0.7), { temperature: 0.7 }, 20000, 4);
});

test('top-k restricts support to the k highest logits and renormalises', () => {
  // Top 3: tokens 1, 3 (2.5) and 5 (1.7).
  const p = softmax([row[1]!, row[3]!, row[5]!]);
  const probs = row.map((_, i) => (i === 1 ? p[0]! : i === 3 ? p[1]! : i === 5 ? p[2]! : 0));
  checkFrequencies(row, probs, { topK: 3 });
  // Ties at the k-th place keep the lower id: top-1 of the two 2.5s is token 1 (greedy); top-2 is {1, 3}.
  const two = sampleLogits(tile(row, 500), 500, row.length, { topK: 2 }, rngs(500));
  assert.ok(two.every((t) => t === 1 || t === 3));
});

test('top-p keeps the smallest most-probable set reaching p (at least one token)', () => {
  const full = softmax(row);
  const order = [...full.keys()].sort((a, b) => full[b]! - full[a]! || a - b);
  for (const p of [0.3, 0.6, 0.8, 0.95]) {
    const kept: number[] = [];
    let mass = 0;
    for (const i of order) { if (mass >= p) break; kept.push(i); mass += full[i]!; }
    const probs = full.map((q, i) => (kept.includes(i) ? q / mass : 0));
    checkFrequencies(row, probs, { topP: p }, 8000, 5);
  }
  const tiny = sampleLogits(tile(row, 100), 100, row.length, { topP: 1e-9 }, rngs(100));
  assert.ok(tiny.every((t) => t === 1), 'topP → 0 keeps only the most probable token');
});

// The sampler by its definition: full sort, then cut, then draw in ascending id order.
function referenceSample(l: number[], o: { temperature: number; topK: number; topP: number }, u: number): number {
  let order = [...l.keys()].sort((a, b) => l[b]! - l[a]! || a - b);
  if (o.topK > 0) order = order.slice(0, o.topK);
  const mx = l[order[0]!]!;
  const e = new Map(order.map((i) => [i, Math.exp((l[i]! - mx) / o.temperature)]));
  const total = [...e.values()].reduce((a, b) => a + b, 0);
  const kept: number[] = [];
  let mass = 0;
  for (const i of order) { if (o.topP < 1 && mass >= o.topP * total) break; kept.push(i); mass += e.get(i)!; }
  kept.sort((a, b) => a - b);
  let acc = 0;
  for (const i of kept) { acc += e.get(i)!; if (acc > u * mass) return i; }
  return kept[kept.length - 1]!;
}

test('large vocabularies: heap and quickselect top-k, prefiltered nucleus, all agree with a full sort', () => {
  const V = 3000, N = 30;
  const logits = randn([N, V], 6, { std: 3 }).f32;
  for (const o of [{ temperature: 0.8, topK: 2000, topP: 0.9 }, { temperature: 1, topK: 20, topP: 1 },
    { temperature: 1.5, topK: 40, topP: 0.5 }, { temperature: 1, topK: 0, topP: 0.9 }]) {
    const toks = sampleLogits(logits, N, V, o, rngs(N, 7));
    const again = rngs(N, 7);
    for (let r = 0; r < N; r++)
      assert.equal(
        toks[r],
        referenceSample(Array.from(logits.subarray(r * V, (r + 1) * V)), o, again[r]!.uniform53()),
        `row ${r} ${JSON.stringify(o)}`,
      );
  }
});

test('a row’s sample depends only on its logits and its rng, not on the batch', () => {
  const V = 50;
  const logits = randn([6, V], 8).f32;
  const o = { temperature: 1.3, topK: 20, topP: 0.9 };
  const all = sampleLogits(logits, 6, V, o, rngs(6, 9));
  for (let r = 0; r < 6; r++) {
    const alone = sampleRow(logits.slice(r * V, (r + 1) * V), o, new Rng(9).split(r));
    assert.equal(alone, all[r]);
  }
  assert.deepEqual(sampleLogits(logits, 6, V, o, rngs(6, 9)), all);
  const t = new Tensor(logits, [6, V]);
  assert.deepEqual(sampleLogits(t, o, rngs(6, 9)), all);
  // A batch big enough to be split over two threads gives the same tokens as one row at a time.
  const [N2, V2] = [100, 3000];
  const big = randn([N2, V2], 10).f32;
  const batch = sampleLogits(big, N2, V2, o, rngs(N2, 11));
  for (let r = 0; r < N2; r += 7)
    assert.equal(sampleRow(big.slice(r * V2, (r + 1) * V2), o, new Rng(11).split(r)), batch[r]);
});

test('sampleLogits rejects bad inputs', () => {
  const l = new Float32Array(8);
  assert.throws(() => sampleLogits(l, 2, 4, {}, rngs(1)), CtfError);
  assert.throws(() => sampleLogits(l, 2, 3, {}, rngs(2)), CtfError);
  assert.throws(() => sampleLogits(l, 2, 4, { topP: 1.5 }, rngs(2)), CtfError);
  assert.throws(() => sampleLogits(l, 2, 4, { temperature: -1 }, rngs(2)), CtfError);
  assert.throws(() => sampleLogits(Float32Array.from([0, NaN, 1, 2]), 1, 4, {}, rngs(1)), /NaN/);
});

test('nearestRows matches brute force; ties go to the lowest index', () => {
  const N = 300, D = 7, V = 50;
  const x = randn([3, N / 3, D], 10);
  const cb = randn([V, D], 11);
  const { index, dist } = nearestRows(x, cb);
  for (let n = 0; n < N; n++) {
    let best = -1, bd = Infinity;
    for (let j = 0; j < V; j++) {
      let d = 0;
      for (let k = 0; k < D; k++) d += (x.f32[n * D + k]! - cb.f32[j * D + k]!) ** 2;
      if (d < bd) { bd = d; best = j; }
    }
    assert.equal(index[n], best, `row ${n}`);
    assert.ok(Math.abs(dist[n]! - bd) < 1e-4 * (1 + bd), `row ${n}: ${dist[n]} vs ${bd}`);
  }
  // Integer data: exact arithmetic, so duplicate codebook rows are exact ties.
  const c2 = new Tensor(Float32Array.from([5, 5, 1, 2, 9, 9, 1, 2, 0, 0]), [5, 2]);
  const x2 = new Tensor(Float32Array.from([1, 2, 1, 3, 0, 0, 100, 100]), [4, 2]);
  const r2 = nearestRows(x2, c2);
  assert.deepEqual(Array.from(r2.index), [1, 1, 4, 2]);
  assert.deepEqual(Array.from(r2.dist), [0, 1, 0, 2 * 91 * 91]);
  assert.throws(() => nearestRows(x2, randn([5, 3], 1)), CtfError);
});

test('nearestRows in many chunks (large V) still matches brute force', () => {
  const N = 70, D = 3, V = 40000;  // (1 << 20) / V = 26 rows per chunk
  const x = randn([N, D], 12), cb = randn([V, D], 13);
  const { index } = nearestRows(x, cb);
  for (const n of [0, 25, 26, 27, 52, 69]) {
    let best = -1, bd = Infinity;
    for (let j = 0; j < V; j++) {
      let d = 0;
      for (let k = 0; k < D; k++) d += (x.f32[n * D + k]! - cb.f32[j * D + k]!) ** 2;
      if (d < bd) { bd = d; best = j; }
    }
    let dIdx = 0;
    for (let k = 0; k < D; k++) dIdx += (x.f32[n * D + k]! - cb.f32[index[n]! * D + k]!) ** 2;
    assert.ok(index[n] === best || Math.abs(dIdx - bd) < 1e-5, `row ${n}: ${index[n]} vs ${best}`);
  }
});
