import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  classAccuracy, featureStats, frechetDistance, inceptionScore, precisionRecall, type FeatureStats,
} from '../../src/eval/metrics.js';
import { matMul, psdSqrt, symmetricEigen } from '../../src/eval/linalg.js';
import { Rng } from '../../src/engine/rng.js';
import { CtfError } from '../../src/errors.js';
import { assertClose } from '../helpers.js';
import { fixturePath } from '../oracle/fixtures.js';

// ── the fixture's inputs, rebuilt bit for bit (oracle/make_eval_fixtures.py) ─────────────────────
interface SetSpec {
  seed: number;
  n: number;
  dim: number;
  mu: number[];
  mix: number[];
  sum: number;
  head: number[];
  last: number;
}
interface FrechetCase {
  a: string;
  b: string;
  fid_scipy: number;
  fid_eigh: number;
  k?: number;
  precision?: number;
  recall?: number;
}
interface InceptionCase {
  seed: number;
  n: number;
  classes: number;
  peak: number;
  splits: number;
  mean: number;
  std: number;
}
interface Fixture {
  sets: Record<string, SetSpec>;
  a16_stats: { mean: number[]; cov: number[] };
  frechet: FrechetCase[];
  inception: InceptionCase[];
}
const fixture = JSON.parse(readFileSync(fixturePath('eval-metrics.json'), 'utf8')) as Fixture;

function fmix32(h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
const uniform = (seed: number, idx: number): number =>
  (fmix32((Math.imul(seed, 0x9e3779b1) + idx) >>> 0) + 0.5) / 2 ** 32;

/** x = float32(mu + z·mix), z from the hash: the same operations in the same order as the oracle. */
function fixtureFeatures(s: SetSpec): Float32Array {
  const { n, dim } = s;
  const z = new Float64Array(n * dim);
  for (let m = 0; m < n * dim; m++)
    z[m] =
      (uniform(s.seed, 4 * m) +
        uniform(s.seed, 4 * m + 1) +
        uniform(s.seed, 4 * m + 2) +
        uniform(s.seed, 4 * m + 3) -
        2) *
      Math.sqrt(3);
  const x = new Float32Array(n * dim);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < dim; j++) {
      let acc = 0;
      for (let k = 0; k < dim; k++) acc += z[i * dim + k]! * s.mix[k * dim + j]!;
      x[i * dim + j] = acc + s.mu[j]!;
    }
  return x;
}

const sets = new Map(Object.entries(fixture.sets).map(([name, s]) => [name, { spec: s, x: fixtureFeatures(s) }]));
const setOf = (name: string) => sets.get(name)!;
const statsOf = (name: string): FeatureStats => {
  const s = setOf(name);
  return featureStats(s.x, s.spec.n, s.spec.dim);
};

/** p = w / Σw with w = u⁸ + peak on class i mod classes (the oracle's `probs`). */
function fixtureProbs(c: InceptionCase): Float64Array {
  const p = new Float64Array(c.n * c.classes);
  for (let i = 0; i < c.n; i++) {
    let s = 0;
    for (let k = 0; k < c.classes; k++) {
      const u = uniform(c.seed, i * c.classes + k), u2 = u * u, u4 = u2 * u2;
      p[i * c.classes + k] = u4 * u4 + (k === i % c.classes ? c.peak : 0);
      s += p[i * c.classes + k]!;
    }
    for (let k = 0; k < c.classes; k++) p[i * c.classes + k] = p[i * c.classes + k]! / s;
  }
  return p;
}

test('the fixture inputs are rebuilt bit for bit', () => {
  for (const [name, { spec, x }] of sets) {
    let sum = 0;
    for (const v of x) sum += v;
    assert.deepEqual([...x.subarray(0, 4)], spec.head, `${name}: first row`);
    assert.equal(x[x.length - 1], spec.last, `${name}: last element`);
    assertClose([sum], [spec.sum], { atol: 0, rtol: 1e-12, what: `${name}: sum` });
  }
});

// ── linalg ────────────────────────────────────────────────────────────────────────────────────────
function randomSymmetric(n: number, seed: number): Float64Array {
  const rng = new Rng(seed), a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng.normal();
  return a;
}

/** max |V diag(λ) Vᵀ − A| / max|A| and max |VᵀV − I|. */
function eigenErrors(a: Float64Array, n: number): { recon: number; orth: number; values: Float64Array } {
  const { values, vectors: v } = symmetricEigen(a, n);
  let recon = 0, orth = 0, amax = 0;
  for (const x of a) amax = Math.max(amax, Math.abs(x));
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let r = 0, o = 0;
      for (let k = 0; k < n; k++) {
        r += v[i * n + k]! * values[k]! * v[j * n + k]!;
        o += v[k * n + i]! * v[k * n + j]!;
      }
      recon = Math.max(recon, Math.abs(r - a[i * n + j]!) / amax);
      orth = Math.max(orth, Math.abs(o - (i === j ? 1 : 0)));
    }
  return { recon, orth, values };
}

test('symmetricEigen reconstructs A with orthonormal vectors and ascending values', () => {
  for (const [n, seed] of [[1, 1], [2, 2], [5, 3], [64, 4], [150, 5]] as const) {
    const { recon, orth, values } = eigenErrors(randomSymmetric(n, seed), n);
    assert.ok(recon < 1e-13, `n=${n}: reconstruction error ${recon}`);
    assert.ok(orth < 1e-13, `n=${n}: orthonormality error ${orth}`);
    for (let i = 1; i < n; i++) assert.ok(values[i - 1]! <= values[i]!, `n=${n}: values not ascending at ${i}`);
  }
});

test('symmetricEigen finds a known spectrum, repeated and zero eigenvalues included', () => {
  // A = Q diag(λ) Qᵀ with Q the eigenvectors of a random symmetric matrix.
  const n = 40, q = symmetricEigen(randomSymmetric(n, 9), n).vectors;
  const lambda = Array.from({ length: n }, (_, i) => (i < 10 ? 0 : i < 20 ? 2 : i - 15));
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += q[i * n + k]! * lambda[k]! * q[j * n + k]!;
      a[i * n + j] = s;
    }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[i * n + j] = a[j * n + i]!;
  const { recon, orth, values } = eigenErrors(a, n);
  assertClose(values, [...lambda].sort((x, y) => x - y), { atol: 1e-12, rtol: 0, what: 'eigenvalues' });
  assert.ok(recon < 1e-13 && orth < 1e-13, `recon ${recon}, orth ${orth}`);
  // A diagonal matrix is already converged; the zero matrix too.
  assertClose(symmetricEigen(Float64Array.from([3, 0, 0, 0, -1, 0, 0, 0, 2]), 3).values, [-1, 2, 3], {
    atol: 0,
    rtol: 0,
  });
  assertClose(symmetricEigen(new Float64Array(16), 4).values, [0, 0, 0, 0], { atol: 0, rtol: 0 });
});

test('psdSqrt squares back to the matrix, singular ones included', () => {
  const cov = statsOf('s32').cov, n = 32;
  const r = psdSqrt(cov, n);
  const rr = matMul(r, r, n);
  let cmax = 0;
  for (const x of cov) cmax = Math.max(cmax, Math.abs(x));
  assertClose(rr, cov, { atol: 1e-12 * cmax, rtol: 0, what: 'R·R vs the covariance' });
});

// ── feature statistics and Fréchet distance ───────────────────────────────────────────────────────
test('featureStats matches numpy mean and cov(rowvar=False)', () => {
  const s = statsOf('a16');
  assert.equal(s.n, 200);
  assert.equal(s.dim, 16);
  assertClose(s.mean, fixture.a16_stats.mean, { atol: 1e-14, rtol: 1e-12, what: 'mean' });
  assertClose(s.cov, fixture.a16_stats.cov, { atol: 1e-14, rtol: 1e-12, what: 'cov' });
  // Float64 input gives the same statistics as the float32 it holds.
  const x = setOf('a16').x;
  assertClose(featureStats(Float64Array.from(x), 200, 16).cov, s.cov, { atol: 0, rtol: 0 });
});

test('Fréchet distance of a set with itself is ~0', () => {
  for (const name of ['a16', 'a32', 's32', 'few32']) {
    const s = statsOf(name);
    let traces = 0;
    for (let j = 0; j < s.dim; j++) traces += 2 * s.cov[j * s.dim + j]!;
    const fd = frechetDistance(s, s);
    assert.ok(Math.abs(fd) < 1e-6 * traces, `${name}: FD with itself ${fd} (traces ${traces})`);
  }
});

test('Fréchet distance matches the scipy sqrtm reference (pytorch-fid) on the fixtures', () => {
  for (const c of fixture.frechet) {
    const fd = frechetDistance(statsOf(c.a), statsOf(c.b));
    if (c.a === c.b) { assert.ok(Math.abs(fd) < 1e-9, `${c.a} with itself: ${fd}`); continue; }
    assertClose([fd], [c.fid_scipy], { atol: 0, rtol: 1e-4, what: `FD(${c.a}, ${c.b}) vs scipy` });
    assertClose([fd], [c.fid_eigh], { atol: 0, rtol: 1e-8, what: `FD(${c.a}, ${c.b}) vs numpy eigh` });
    // Not bit-symmetric: with a singular covariance first, its square root's near-zero eigenvalues carry
    // errors of ~ε·‖Σ‖, which √ turns into ~1e-8·√‖Σ‖ (scipy's sqrtm has the same floor).
    assertClose([frechetDistance(statsOf(c.b), statsOf(c.a))], [fd], {
      atol: 0,
      rtol: 1e-7,
      what: `FD(${c.b}, ${c.a}) symmetric`,
    });
  }
});

test('Fréchet distance of two Gaussians with known statistics', () => {
  // Diagonal covariances: FD = ‖μ1 − μ2‖² + Σ (√σ1 − √σ2)².
  const dim = 3,
    cov = (d: number[]) => {
      const c = new Float64Array(9);
      d.forEach((v, i) => (c[i * 4] = v));
      return c;
    };
  const a = { n: 10, dim, mean: Float64Array.from([0, 0, 0]), cov: cov([1, 4, 9]) };
  const b = { n: 10, dim, mean: Float64Array.from([1, 2, 0]), cov: cov([4, 4, 0]) };
  assertClose([frechetDistance(a, b)], [5 + 1 + 0 + 9], { atol: 1e-12, rtol: 0 });
});

// ── Inception Score ───────────────────────────────────────────────────────────────────────────────
test('Inception Score: uniform predictions give 1, confident balanced ones the class count', () => {
  const n = 100, classes = 10;
  const uniformP = new Float32Array(n * classes).fill(0.1);
  const u = inceptionScore(uniformP, n, classes);
  assertClose([u.mean, u.std], [1, 0], { atol: 1e-6, rtol: 0, what: 'uniform' });
  const oneHot = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) oneHot[i * classes + (i % classes)] = 1;
  const c = inceptionScore(oneHot, n, classes);
  assertClose([c.mean, c.std], [classes, 0], { atol: 1e-12, rtol: 0, what: 'confident, balanced' });
  // Confident but all the same class: p(y) = p(y|x), score 1.
  const same = new Float64Array(n * classes);
  for (let i = 0; i < n; i++) same[i * classes + 3] = 1;
  assert.equal(inceptionScore(same, n, classes, 5).mean, 1);
});

test('Inception Score matches the reference split formula on the fixtures', () => {
  for (const c of fixture.inception) {
    const r = inceptionScore(fixtureProbs(c), c.n, c.classes, c.splits);
    assertClose([r.mean, r.std], [c.mean, c.std], { atol: 1e-12, rtol: 1e-10, what: `IS n=${c.n} splits=${c.splits}` });
  }
});

// ── precision / recall ────────────────────────────────────────────────────────────────────────────
test('precision and recall of a set against itself are 1', () => {
  for (const name of ['a16', 's32', 'few32']) {
    const { spec, x } = setOf(name);
    assert.deepEqual(precisionRecall(x, x, spec.n, spec.n, spec.dim), { precision: 1, recall: 1 }, name);
  }
});

test('precision and recall match brute-force numpy on the fixtures, whatever the block size', () => {
  for (const c of fixture.frechet) {
    if (c.precision === undefined) continue;
    const a = setOf(c.a), b = setOf(c.b);
    const expected = { precision: c.precision, recall: c.recall };
    assert.deepEqual(precisionRecall(a.x, b.x, a.spec.n, b.spec.n, a.spec.dim, c.k), expected, `${c.a} vs ${c.b}`);
    assert.deepEqual(
      precisionRecall(a.x, b.x, a.spec.n, b.spec.n, a.spec.dim, c.k, { blockRows: 7 }),
      expected,
      `${c.a} vs ${c.b}, blocks of 7`,
    );
  }
});

test('precision and recall drop as the fake set moves away', () => {
  // Every fake row is a real row moved by `shift` in each coordinate; it stays inside the real manifold
  // (its own original is within the k-NN radius) until ‖shift‖ outgrows the radii, then falls out.
  const { spec, x } = setOf('a32');
  const seen: number[][] = [];
  for (const shift of [0, 0.5, 0.75, 1, 1.5]) {
    const pr = precisionRecall(x, x.map((v) => v + shift), spec.n, spec.n, spec.dim);
    seen.push([shift, pr.precision, pr.recall]);
  }
  const msg = JSON.stringify(seen);
  assert.deepEqual(seen[0], [0, 1, 1], msg);
  for (let i = 1; i < seen.length; i++)
    assert.ok(seen[i]![1]! <= seen[i - 1]![1]! && seen[i]![2]! <= seen[i - 1]![2]!, msg);
  assert.ok(
    seen.some(([, p, r]) => p! > 0.05 && p! < 0.95 && r! > 0.05 && r! < 0.95),
    `no shift in the transition: ${msg}`,
  );
  assert.ok(seen[seen.length - 1]![1]! < 0.05 && seen[seen.length - 1]![2]! < 0.05, msg);
  // A fake set squeezed into the real mode: precise, but it covers little of the real set.
  const mean = featureStats(x, spec.n, spec.dim).mean;
  const squeezed = x.map((v, i) => mean[i % spec.dim]! + 0.3 * (v - mean[i % spec.dim]!));
  const pr = precisionRecall(x, squeezed, spec.n, spec.n, spec.dim);
  assert.ok(pr.precision > 0.9 && pr.recall < 0.5, `squeezed: ${JSON.stringify(pr)}`);
});

test('precision and recall decide ties and duplicates exactly (d ≤ radius)', () => {
  // Points on a line at 0, 1, 2, … : every radius (k = 1) is exactly 1, and a fake point at 0.5 + i or
  // at an integer sits inside; one at −1 is exactly on the first ball's boundary, −1.5 outside.
  const real = Float32Array.from([0, 1, 2, 3, 4, 5]);
  const fake = Float32Array.from([0.5, 2, -1, -1.5, 10, 11, 12]);
  const pr = precisionRecall(real, fake, 6, 7, 1, 1);
  assert.equal(pr.precision, 3 / 7);
  // Fake squared radii (k = 1): 2.25, 2.25, 0.25, 0.25, 1, 1, 1 → real 0, 1, 2, 3 are inside.
  assert.equal(pr.recall, 4 / 6);
});

/** Precision and recall by brute force: every float64 distance, k-th nearest excluding self. */
function bruteForcePr(
  real: Float32Array,
  fake: Float32Array,
  nr: number,
  nf: number,
  dim: number,
  k: number,
): { precision: number; recall: number } {
  const d = (x: Float32Array, i: number, y: Float32Array, j: number) => {
    let s = 0;
    for (let c = 0; c < dim; c++) s += (x[i * dim + c]! - y[j * dim + c]!) ** 2;
    return s;
  };
  const radii = (x: Float32Array, n: number) =>
    Array.from(
      { length: n },
      (_, i) => Array.from({ length: n }, (_, j) => (j === i ? Infinity : d(x, i, x, j))).sort((a, b) => a - b)[k - 1]!,
    );
  const share = (q: Float32Array, nq: number, r: Float32Array, nrr: number, rad: number[]) =>
    Array.from({ length: nq }, (_, i) => rad.some((radius, j) => d(q, i, r, j) <= radius)).filter(Boolean).length / nq;
  return { precision: share(fake, nf, real, nr, radii(real, nr)), recall: share(real, nr, fake, nf, radii(fake, nf)) };
}

test('precision and recall stay exact where float32 distances cannot decide', () => {
  // Two tight clusters 2000 apart: squared norms ~1e6 around the real mean, radii ~1e-4, so float32
  // GEMM distances are noise at the radius scale and every decision falls back to float64.
  const dim = 8, n = 120, rng = new Rng(11);
  const blobs = (m: number, spread: number) => {
    const x = new Float32Array(m * dim);
    for (let i = 0; i < m; i++)
      for (let c = 0; c < dim; c++) x[i * dim + c] = (c === 0 ? (i % 2 ? 1000 : -1000) : 0) + spread * rng.normal();
    return x;
  };
  const real = blobs(n, 0.01), fake = blobs(n + 7, 0.012);
  for (const k of [1, 3, 5])
    assert.deepEqual(
      precisionRecall(real, fake, n, n + 7, dim, k),
      bruteForcePr(real, fake, n, n + 7, dim, k),
      `k=${k}`,
    );
});

// ── class accuracy ────────────────────────────────────────────────────────────────────────────────
test('classAccuracy counts argmax hits, ties to the lower class', () => {
  const probs = Float32Array.from([0.7, 0.2, 0.1, 0.1, 0.1, 0.8, 0.4, 0.4, 0.2, 0.3, 0.3, 0.4]);
  assert.equal(classAccuracy(probs, 4, 3, Int32Array.from([0, 2, 0, 2])), 1);
  assert.equal(classAccuracy(probs, 4, 3, Int32Array.from([0, 2, 1, 0])), 0.5);
});

// ── bad input ─────────────────────────────────────────────────────────────────────────────────────
test('bad shapes and values throw CtfError naming the argument', () => {
  const bad = (f: () => unknown, re: RegExp) =>
    assert.throws(f, (e: unknown) => e instanceof CtfError && re.test(e.message), re.source);
  const x = setOf('a16').x;
  bad(() => featureStats(x, 200, 15), /features has 3200 numbers, expected n × dim = 200 × 15/);
  bad(() => featureStats(x.slice(0, 16), 1, 16), /at least 2 feature rows/);
  const nan = x.slice(); nan[5 * 16 + 3] = NaN;
  bad(() => featureStats(nan, 200, 16), /features row 5, column 3 is NaN/);
  bad(() => frechetDistance(statsOf('a16'), statsOf('a32')), /a has 16 features, b has 32/);
  bad(
    () => frechetDistance({ ...statsOf('a16'), cov: new Float64Array(3) }, statsOf('a16')),
    /a\.cov has 3 numbers, expected dim² = 256/,
  );
  bad(() => inceptionScore(Float32Array.from([2, -1]), 1, 2, 1), /probs row 0, class 1 is -1/);
  bad(() => inceptionScore(Float32Array.from([0.5, 0.6]), 1, 2, 1), /probs row 0 sums to 1\.1/);
  bad(() => inceptionScore(new Float32Array(20).fill(0.5), 10, 2, 11), /splits 11 must be an integer in \[1, n = 10\]/);
  bad(() => precisionRecall(x, x, 200, 200, 16, 200), /each set needs more than k = 200 rows/);
  bad(() => precisionRecall(x, x.subarray(0, 100), 200, 200, 16), /fake has 100 numbers/);
  bad(() => precisionRecall(x, x, 200, 200, 16, 3, { blockRows: 0 }), /blockRows 0/);
  bad(() => classAccuracy(new Float32Array(6).fill(0.5), 3, 2, Int32Array.from([0, 1])), /wanted has 2 labels/);
  bad(
    () => classAccuracy(new Float32Array(6).fill(0.5), 3, 2, Int32Array.from([0, 1, 2])),
    /wanted\[2\] = 2 is not a class/,
  );
  bad(() => symmetricEigen(Float64Array.from([1, 2, 3, 4]), 2), /not symmetric: \(1, 0\) = 3 but \(0, 1\) = 2/);
  bad(() => symmetricEigen(Float64Array.from([1, Infinity, Infinity, 4]), 2), /element \(0, 1\) is Infinity/);
});
