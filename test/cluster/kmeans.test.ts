import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inertiaOf, kmeans, type KMeansEvent } from '../../src/cluster/kmeans.js';
import { l2Normalize } from '../../src/engine/ops/vq.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor } from '../../src/engine/tensor.js';
import { CtfError } from '../../src/errors.js';

/** n points around each of the given centres (isotropic normal noise of std sigma); labels (V). */
function blobs(centres: number[][], n: number, sigma: number, seed: number): { x: Tensor; labels: Int32Array } {
  const D = centres[0]!.length, V = centres.length * n, rng = new Rng(seed);
  const x = new Float32Array(V * D), labels = new Int32Array(V);
  const order = rng.permutation(V);  // interleave the blobs so row order says nothing
  for (let p = 0; p < V; p++) {
    const i = order[p]!, b = Math.floor(p / n);
    labels[i] = b;
    for (let d = 0; d < D; d++) x[i * D + d] = centres[b]![d]! + sigma * rng.normal();
  }
  return { x: new Tensor(x, [V, D]), labels };
}

function unitRows(V: number, D: number, seed: number): Tensor {
  return l2Normalize(new Tensor(new Rng(seed).fillNormal(new Float32Array(V * D)), [V, D]));
}

test('kmeans recovers well-separated blobs exactly', () => {
  const centres = [[10, 0, 0], [-10, 0, 0], [0, 10, 0], [0, -10, 0], [0, 0, 10], [0, 0, -10]];
  const { x, labels } = blobs(centres, 40, 0.5, 3);
  const r = kmeans(x, { k: 6, restarts: 2, seed: 1 });
  assert.deepEqual([...r.sizes].sort(), [40, 40, 40, 40, 40, 40]);
  const blobOf = new Map<number, number>();  // cluster → blob, must be one-to-one
  for (let i = 0; i < labels.length; i++) {
    const c = r.assignment[i]!;
    if (!blobOf.has(c)) blobOf.set(c, labels[i]!);
    assert.equal(blobOf.get(c), labels[i], `row ${i}: cluster ${c} mixes blobs`);
  }
  assert.equal(new Set(blobOf.values()).size, 6);
  for (const run of r.runs) assert.equal(run.stop, 'converged');
  // Each centroid is its blob's mean, so within a blob the centroid is near the true centre.
  for (const [c, b] of blobOf)
    for (let d = 0; d < 3; d++) assert.ok(Math.abs(r.centroids[c * 3 + d]! - centres[b]![d]!) < 0.3);
});

test('kmeans inertia never increases across iterations, and the reported value is the real one', () => {
  const lattice = new Rng(4);
  const cases: [string, Tensor, number][] = [
    ['unit rows', unitRows(3000, 8, 5), 64],
    // A coarse lattice (625 points): many exact distance ties.
    ['lattice', new Tensor(Float32Array.from({ length: 2000 * 4 }, () => lattice.int(5) / 2 - 1), [2000, 4]), 40],
    // Far from the origin ‖x‖² − 2x·c + ‖c‖² cancels badly in float32, so the GEMM proposes wrong moves.
    ['offset', new Tensor(Float32Array.from(unitRows(1000, 4, 8).f32, (v) => 300 + v), [1000, 4]), 20],
  ];
  for (const [what, x, k] of cases) {
    const events: KMeansEvent[] = [];
    const r = kmeans(x, { k, restarts: 3, maxIter: 200, seed: 2, onEvent: (e) => events.push(e) });
    for (const run of r.runs) {
      assert.ok(run.history.length >= 2, `${what}: restart ${run.restart} ran no iteration`);
      for (let t = 1; t < run.history.length; t++)
        assert.ok(
          run.history[t]! <= run.history[t - 1]!,
          `${what}: restart ${run.restart} iteration ${t}: ${run.history[t]} > ${run.history[t - 1]}`,
        );
      assert.equal(run.inertia, run.history.at(-1));
      assert.equal(run.history[0], events.find((e) => e.type === 'init' && e.restart === run.restart)!.inertia);
      const iters = events.filter((e) => e.type === 'iteration' && e.restart === run.restart).map((e) => e.inertia);
      assert.deepEqual(iters, run.history.slice(1));
    }
    assert.equal(
      r.inertia,
      inertiaOf(x, r.assignment, r.centroids),
      `${what}: reported inertia differs from the state's`,
    );
    const sizes = new Int32Array(k);
    for (const a of r.assignment) sizes[a]!++;
    assert.deepEqual(sizes, r.sizes);
    assert.ok(Math.min(...r.sizes) >= 1, `${what}: empty cluster`);
  }
});

test('kmeans: a fixed seed repeats exactly; another seed differs', () => {
  const x = unitRows(2000, 8, 11);
  const a = kmeans(x, { k: 32, restarts: 2, seed: 7 });
  const b = kmeans(x, { k: 32, restarts: 2, seed: 7 });
  assert.deepEqual(a.assignment, b.assignment);
  assert.deepEqual(a.centroids, b.centroids);
  assert.deepEqual(a.runs.map((r) => r.history), b.runs.map((r) => r.history));
  const c = kmeans(x, { k: 32, restarts: 2, seed: 8 });
  assert.notDeepEqual(a.centroids, c.centroids);
});

test('kmeans keeps the restart with the lowest inertia; restart r does not depend on the restart count', () => {
  const x = unitRows(1500, 8, 13);
  const r = kmeans(x, { k: 48, restarts: 5, seed: 3 });
  const inertias = r.runs.map((run) => run.inertia);
  assert.ok(new Set(inertias).size > 1, 'restarts should differ for this test to mean anything');
  assert.equal(r.inertia, Math.min(...inertias));
  assert.equal(r.best, inertias.indexOf(Math.min(...inertias)));
  assert.equal(inertiaOf(x, r.assignment, r.centroids), r.inertia);
  const one = kmeans(x, { k: 48, restarts: 1, seed: 3 });
  assert.deepEqual(one.runs[0]!.history, r.runs[0]!.history);
});

test('kmeans re-seeds empty clusters when rows repeat', () => {
  // 10 distinct points, each 12 times, into 20 clusters: seeding must reuse points, so clusters collide.
  const V = 120, D = 2, x = new Float32Array(V * D);
  for (let i = 0; i < V; i++) { x[i * D] = i % 10; x[i * D + 1] = (i % 10) ** 2 / 10; }
  const r = kmeans(new Tensor(x, [V, D]), { k: 20, restarts: 2, seed: 0 });
  assert.ok(Math.min(...r.sizes) >= 1);
  assert.equal(r.sizes.reduce((p, q) => p + q, 0), V);
  assert.equal(r.inertia, 0);
  assert.ok(r.runs.some((run) => run.reseeded > 0), 'expected at least one re-seeded cluster');
});

test('kmeans: maxIter 0 stops after seeding; bad inputs are refused', () => {
  const x = unitRows(100, 4, 1);
  const r = kmeans(x, { k: 5, restarts: 1, maxIter: 0 });
  assert.equal(r.runs[0]!.history.length, 1);
  assert.equal(r.runs[0]!.stop, 'maxIter');
  assert.throws(
    () => kmeans(x, { k: 101 }),
    (e: Error) => e instanceof CtfError && /k = 101 clusters need at least as many rows/.test(e.message),
  );
  assert.throws(() => kmeans(x, { k: 0 }), CtfError);
  const bad = new Float32Array(x.f32);
  bad[9] = NaN;
  assert.throws(() => kmeans(new Tensor(bad, [100, 4]), { k: 3 }), /row 2 .* holds NaN/);
});
