// k-means on row vectors x (V, D) by squared Euclidean distance: greedy k-means++ seeding, Lloyd
// iterations until no assignment changes (or maxIter), several restarts, the lowest inertia kept.
//
// Distances for seeding and assignment are GEMMs (‖x‖² − 2 x·cᵀ + ‖c‖² in float32 with sgemm, in
// cache-sized blocks on two threads: native/kmeans.cc). float32 cancellation can misjudge near-ties, so a point only
// moves when the exact (float64, coordinate-wise) distance to the new centroid is strictly smaller — each iteration's
// inertia is then ≤ the previous one up to the rounding of the mean, and a step that would still raise it (a last-ulp
// effect) is undone and ends the restart. So the reported history never increases.
//
// Empty clusters are re-seeded deterministically from the points farthest from their centroids.
// Restart r draws from Rng(seed).split('restart.r'), so a restart's result does not depend on how many
// restarts run, and a fixed seed gives identical results.
import { CtfError } from '../errors.js';
import { kernel } from '../engine/native.js';
import { Rng } from '../engine/rng.js';
import type { Tensor } from '../engine/tensor.js';

// x (N, D), c (K, D) -> index (N): nearest centroid by the GEMM expansion, lowest index among ties.
const kmeansAssign =
  kernel<(x: Float32Array, N: number, D: number, c: Float32Array, K: number, index: Int32Array) => void>(
    'kmeansAssign',
  );
// x (N, D), xx (N), cand (L, D), closest (N) -> dist (L, N) to every candidate, pot (L) = Σ min(closest, dist).
const kmeansppPotentials =
  kernel<
    (
      x: Float32Array,
      N: number,
      D: number,
      xx: Float32Array,
      cand: Float32Array,
      L: number,
      closest: Float64Array,
      dist: Float32Array,
      pot: Float64Array,
    ) => void
  >('kmeansppPotentials');

export interface KMeansOptions {
  k: number;
  restarts?: number;     // independent k-means++ seedings; the lowest final inertia wins (default 4)
  maxIter?: number;      // Lloyd iterations per restart (default 100)
  seed?: number;         // default 0
  localTrials?: number;  // greedy k-means++ candidates per centre (default 2 + ⌊ln k⌋, as scikit-learn)
  onEvent?: (e: KMeansEvent) => void;
}

export type KMeansStop =
  | 'converged'  // an iteration moved no point
  | 'maxIter'
  | 'rounding';  // the next step would have raised the inertia by rounding alone; it was undone

export type KMeansEvent =
  | { type: 'init'; restart: number; inertia: number; ms: number }
  | { type: 'iteration'; restart: number; iter: number; inertia: number; changed: number }
  | { type: 'restart'; restart: number; inertia: number; iterations: number; stop: KMeansStop; ms: number };

export interface KMeansRun {
  restart: number;
  inertia: number;       // Σ ‖x_i − c_{a(i)}‖² of the final state (= history.at(-1))
  history: number[];     // [after seeding, after iteration 1, …]; never increases
  iterations: number;
  stop: KMeansStop;
  reseeded: number;      // empty clusters re-seeded over the run
  ms: number;
}

export interface KMeansResult {
  k: number;
  dim: number;
  assignment: Int32Array;  // (V) cluster of every row
  centroids: Float32Array; // (K, D)
  sizes: Int32Array;       // (K) rows per cluster; all ≥ 1
  inertia: number;
  best: number;            // index of the winning restart (lowest inertia; the first among ties)
  runs: KMeansRun[];
}

/** Exact-ish squared distance (float64 over float32 inputs) between row i of x and row j of c. */
function dist64(x: Float32Array, i: number, c: Float32Array, j: number, D: number): number {
  let s = 0;
  const xo = i * D, co = j * D;
  for (let d = 0; d < D; d++) {
    const t = x[xo + d]! - c[co + d]!;
    s += t * t;
  }
  return s;
}

function rowNorms2(x: Float32Array, n: number, D: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += x[i * D + d]! ** 2;
    out[i] = s;
  }
  return out;
}

/** Index i with cum[i-1] ≤ u < cum[i] (cum ascending, length V). */
function searchCumulative(cum: Float64Array, u: number): number {
  let lo = 0, hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cum[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Greedy k-means++ (Arthur & Vassilvitskii; scikit-learn's variant): each new centre is the best of
 * `trials` D²-sampled candidates, the one that lowers Σ min-distance most. Candidate distances to all
 * rows are one sgemm per centre. Returns centroids (K, D), copies of rows of x.
 */
function kmeansPlusPlus(
  x: Float32Array,
  V: number,
  D: number,
  K: number,
  trials: number,
  rng: Rng,
  xx: Float32Array,
): Float32Array {
  const c = new Float32Array(K * D);
  const closest = new Float64Array(V); // (V) squared distance to the nearest chosen centre
  const cum = new Float64Array(V);
  const cand = new Float32Array(trials * D); // (L, D)
  const candDist = new Float32Array(trials * V); // (L, V)
  const pots = new Float64Array(trials);
  const first = rng.int(V);
  c.set(x.subarray(first * D, first * D + D), 0);
  for (let i = 0; i < V; i++) closest[i] = dist64(x, i, c, 0, D);
  for (let j = 1; j < K; j++) {
    let pot = 0;
    for (let i = 0; i < V; i++) cum[i] = pot += closest[i]!;
    const ids: number[] = [];
    for (let t = 0; t < trials; t++) ids.push(pot > 0 ? searchCumulative(cum, rng.uniform53() * pot) : rng.int(V));
    ids.forEach((id, t) => cand.set(x.subarray(id * D, id * D + D), t * D));
    kmeansppPotentials(x, V, D, xx, cand, trials, closest, candDist, pots);
    let bestT = 0;
    for (let t = 1; t < trials; t++) if (pots[t]! < pots[bestT]!) bestT = t;
    c.set(cand.subarray(bestT * D, bestT * D + D), j * D);
    const row = candDist.subarray(bestT * V, bestT * V + V);
    for (let i = 0; i < V; i++) closest[i] = Math.min(closest[i]!, row[i]!);
  }
  return c;
}

/**
 * Gives every empty cluster the point farthest from its own centroid among clusters that can spare one
 * (size > 1), farthest first, lower index among ties. The point becomes the new centroid, so its
 * distance drops to 0 and the inertia can only fall. Returns how many clusters were re-seeded.
 */
function reseedEmpty(
  x: Float32Array,
  V: number,
  D: number,
  c: Float32Array,
  a: Int32Array,
  dist: Float64Array,
  sizes: Int32Array,
): number {
  const empty: number[] = [];
  for (let j = 0; j < sizes.length; j++) if (sizes[j] === 0) empty.push(j);
  if (empty.length === 0) return 0;
  const order = Array.from({ length: V }, (_, i) => i).sort((p, q) => dist[q]! - dist[p]! || p - q);
  let next = 0;
  for (const j of empty) {
    while (next < V && sizes[a[order[next]!]!]! <= 1) next++;
    if (next === V) throw new CtfError(`kmeans: cannot fill empty cluster ${j}: no cluster has a point to spare`);
    const p = order[next++]!;
    sizes[a[p]!]!--;
    a[p] = j;
    sizes[j] = 1;
    dist[p] = 0;
    c.set(x.subarray(p * D, p * D + D), j * D);
  }
  return empty.length;
}

function sumOf(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]!;
  return s;
}

/** c (K, D) = float32 means of the rows of each cluster (all clusters are non-empty here). */
function updateCentroids(
  x: Float32Array,
  V: number,
  D: number,
  a: Int32Array,
  sizes: Int32Array,
  c: Float32Array,
): void {
  const K = sizes.length;
  const sum = new Float64Array(K * D);
  for (let i = 0; i < V; i++) {
    const o = a[i]! * D;
    for (let d = 0; d < D; d++) sum[o + d]! += x[i * D + d]!;
  }
  // Rounding each coordinate of the mean to the nearest float32 cannot raise a cluster's cost above
  // that of any other float32 centroid, the old one included.
  for (let j = 0; j < K; j++) for (let d = 0; d < D; d++) c[j * D + d] = sum[j * D + d]! / sizes[j]!;
}

interface RestartState { a: Int32Array; c: Float32Array; sizes: Int32Array; run: KMeansRun }

function runRestart(
  x: Float32Array,
  V: number,
  D: number,
  K: number,
  r: number,
  o: Required<Omit<KMeansOptions, 'onEvent'>> & Pick<KMeansOptions, 'onEvent'>,
  xx: Float32Array,
): RestartState {
  const t0 = performance.now();
  const rng = new Rng(o.seed).split(`restart.${r}`);
  const c = kmeansPlusPlus(x, V, D, K, o.localTrials, rng, xx);
  const a = new Int32Array(V);
  kmeansAssign(x, V, D, c, K, a);
  const dist = new Float64Array(V);
  const sizes = new Int32Array(K);
  for (let i = 0; i < V; i++) {
    dist[i] = dist64(x, i, c, a[i]!, D);
    sizes[a[i]!]!++;
  }
  let reseeded = reseedEmpty(x, V, D, c, a, dist, sizes);
  const history = [sumOf(dist)];
  o.onEvent?.({ type: 'init', restart: r, inertia: history[0]!, ms: performance.now() - t0 });

  let stop: KMeansStop = 'maxIter',
    iterations = 0;
  const nearest = new Int32Array(V);
  const prevA = new Int32Array(V),
    prevC = new Float32Array(K * D),
    prevSizes = new Int32Array(K);
  for (let iter = 1; iter <= o.maxIter; iter++) {
    prevA.set(a);
    prevC.set(c);
    prevSizes.set(sizes);
    updateCentroids(x, V, D, a, sizes, c);
    // Move a point only when the exact distance says the new centroid is strictly closer.
    kmeansAssign(x, V, D, c, K, nearest);
    let changed = 0;
    for (let i = 0; i < V; i++) {
      const cur = a[i]!,
        cand = nearest[i]!;
      const dCur = dist64(x, i, c, cur, D);
      if (cand !== cur) {
        const dCand = dist64(x, i, c, cand, D);
        if (dCand < dCur) {
          a[i] = cand;
          dist[i] = dCand;
          sizes[cur]!--;
          sizes[cand]!++;
          changed++;
          continue;
        }
      }
      dist[i] = dCur;
    }
    const filled = reseedEmpty(x, V, D, c, a, dist, sizes);
    const inertia = sumOf(dist);
    if (inertia > history[history.length - 1]!) {
      a.set(prevA);
      c.set(prevC);
      sizes.set(prevSizes);
      stop = 'rounding';
      break;
    }
    reseeded += filled;
    iterations = iter;
    history.push(inertia);
    o.onEvent?.({ type: 'iteration', restart: r, iter, inertia, changed: changed + filled });
    if (changed + filled === 0) {
      stop = 'converged';
      break;
    }
  }
  const run: KMeansRun = {
    restart: r,
    inertia: history[history.length - 1]!,
    history,
    iterations,
    stop,
    reseeded,
    ms: performance.now() - t0,
  };
  o.onEvent?.({ type: 'restart', restart: r, inertia: run.inertia, iterations, stop, ms: run.ms });
  return { a, c, sizes, run };
}

/** k-means of the rows of x (V, D); see the file comment for the guarantees. */
export function kmeans(x: Tensor, o: KMeansOptions): KMeansResult {
  if (x.dtype !== 'f32' || x.ndim !== 2) throw new CtfError(`kmeans: ${x.describe()} must be an f32 (V, D) matrix`);
  const [V, D] = x.shape as [number, number];
  const { k: K } = o;
  const restarts = o.restarts ?? 4, maxIter = o.maxIter ?? 100, seed = o.seed ?? 0;
  const localTrials = o.localTrials ?? 2 + Math.floor(Math.log(K));
  if (!Number.isInteger(K) || K < 1) throw new CtfError(`kmeans: k = ${K} must be a positive integer`);
  if (K > V) throw new CtfError(`kmeans: k = ${K} clusters need at least as many rows, ${x.describe()} has ${V}`);
  if (D < 1) throw new CtfError(`kmeans: ${x.describe()} has no features`);
  if (!Number.isInteger(restarts) || restarts < 1)
    throw new CtfError(`kmeans: restarts = ${restarts} must be an integer ≥ 1`);
  if (!Number.isInteger(maxIter) || maxIter < 0)
    throw new CtfError(`kmeans: maxIter = ${maxIter} must be an integer ≥ 0`);
  if (!Number.isInteger(localTrials) || localTrials < 1)
    throw new CtfError(`kmeans: localTrials = ${localTrials} must be an integer ≥ 1`);
  if (!Number.isSafeInteger(seed)) throw new CtfError(`kmeans: seed ${seed} must be an integer`);
  const data = x.f32;
  for (let i = 0; i < data.length; i++)
    if (!Number.isFinite(data[i]!))
      throw new CtfError(
        `kmeans: row ${Math.floor(i / D)} of ${x.describe()} holds ${data[i]}; every value must be finite`,
      );

  const xx = rowNorms2(data, V, D);
  let best: RestartState | null = null;
  const runs: KMeansRun[] = [];
  for (let r = 0; r < restarts; r++) {
    const s = runRestart(data, V, D, K, r, { k: K, restarts, maxIter, seed, localTrials, onEvent: o.onEvent }, xx);
    runs.push(s.run);
    if (!best || s.run.inertia < best.run.inertia) best = s;
  }
  return {
    k: K,
    dim: D,
    assignment: best!.a,
    centroids: best!.c,
    sizes: best!.sizes,
    inertia: best!.run.inertia,
    best: best!.run.restart,
    runs,
  };
}

/** Σ ‖x_i − c_{a(i)}‖² in float64, summed in row order (the same sum kmeans reports). */
export function inertiaOf(x: Tensor, assignment: Int32Array, centroids: Float32Array): number {
  const [V, D] = x.shape as [number, number];
  let s = 0;
  for (let i = 0; i < V; i++) s += dist64(x.f32, i, centroids, assignment[i]!, D);
  return s;
}
