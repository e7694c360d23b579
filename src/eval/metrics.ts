// Sample-quality metrics over a classifier's outputs: Fréchet distance of penultimate features, the
// Inception-Score-style exp(E KL(p(y|x) ‖ p(y))) of its softmax, precision / recall on k-NN manifolds
// (Kynkäänniemi et al. 2019) and class accuracy of class-conditional samples. Pure functions over
// row-major arrays, float64 accumulation throughout. oracle/make_eval_fixtures.py computes the same
// numbers the reference way (scipy's sqrtm, brute-force numpy distances); test/eval/metrics.test.ts
// compares.
import { CtfError } from '../errors.js';
import { sgemm } from '../engine/ops/matmul.js';
import { traceSqrtProduct } from './linalg.js';

/** Mean and covariance of a set of feature rows: what the Fréchet distance needs from each side. */
export interface FeatureStats {
  n: number;          // rows the statistics came from
  dim: number;        // features per row
  mean: Float64Array; // (dim)
  cov: Float64Array;  // (dim, dim) row-major, unbiased (divides by n − 1) like numpy.cov(rowvar=False)
}

type Rows = Float32Array | Float64Array;

/** Throws unless x holds n × cols finite numbers; names the argument and the first bad element. */
function checkRows(fn: string, what: string, x: Rows, n: number, cols: number, colName: string): void {
  if (!Number.isInteger(n) || n < 1) throw new CtfError(`${fn}: ${what} row count ${n} must be a positive integer`);
  if (!Number.isInteger(cols) || cols < 1) throw new CtfError(`${fn}: ${colName} ${cols} must be a positive integer`);
  if (x.length !== n * cols)
    throw new CtfError(
      `${fn}: ${what} has ${x.length} numbers, expected n × ${colName} = ${n} × ${cols} = ${n * cols}`,
    );
  for (let i = 0; i < x.length; i++)
    if (!Number.isFinite(x[i]!))
      throw new CtfError(
        `${fn}: ${what} row ${Math.floor(i / cols)}, column ${i % cols} is ${x[i]}, expected a finite number`,
      );
}

/** Mean and unbiased covariance of n feature rows (n, dim). Two passes: the mean, then centred products. */
export function featureStats(features: Rows, n: number, dim: number): FeatureStats {
  checkRows('featureStats', 'features', features, n, dim, 'dim');
  if (n < 2) throw new CtfError(`featureStats: ${n} row gives no covariance; pass at least 2 feature rows`);
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < dim; j++) mean[j] = mean[j]! + features[i * dim + j]!;
  for (let j = 0; j < dim; j++) mean[j] = mean[j]! / n;
  const cov = new Float64Array(dim * dim), c = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) c[j] = features[i * dim + j]! - mean[j]!;
    for (let a = 0; a < dim; a++) {  // upper triangle only; mirrored below
      const ca = c[a]!, row = a * dim;
      for (let b = a; b < dim; b++) cov[row + b] = cov[row + b]! + ca * c[b]!;
    }
  }
  for (let a = 0; a < dim; a++)
    for (let b = a; b < dim; b++) cov[a * dim + b] = cov[b * dim + a] = cov[a * dim + b]! / (n - 1);
  return { n, dim, mean, cov };
}

function checkStats(s: FeatureStats, what: string): void {
  const fn = 'frechetDistance';
  if (!Number.isInteger(s.dim) || s.dim < 1)
    throw new CtfError(`${fn}: ${what}.dim ${s.dim} must be a positive integer`);
  if (s.mean.length !== s.dim)
    throw new CtfError(`${fn}: ${what}.mean has ${s.mean.length} numbers, expected dim = ${s.dim}`);
  if (s.cov.length !== s.dim * s.dim)
    throw new CtfError(`${fn}: ${what}.cov has ${s.cov.length} numbers, expected dim² = ${s.dim * s.dim}`);
  checkRows(fn, `${what}.mean`, s.mean, 1, s.dim, 'dim');
  checkRows(fn, `${what}.cov`, s.cov, s.dim, s.dim, 'dim');
}

/**
 * Fréchet distance between the Gaussians fitted to two feature sets:
 * ‖μ₁ − μ₂‖² + Tr(Σ₁) + Tr(Σ₂) − 2 Tr((Σ₁ Σ₂)^{1/2}), the last trace from the eigenvalues of the
 * symmetric Σ₁^{1/2} Σ₂ Σ₁^{1/2} (src/eval/linalg.ts), so singular covariances need no offset. Not
 * clamped: a set against itself gives 0 up to rounding (≈ 1e-12 of the traces), possibly just below.
 */
export function frechetDistance(a: FeatureStats, b: FeatureStats): number {
  checkStats(a, 'a');
  checkStats(b, 'b');
  if (a.dim !== b.dim)
    throw new CtfError(
      `frechetDistance: a has ${a.dim} features, b has ${b.dim}; both must come from the same feature extractor`,
    );
  const d = a.dim;
  let meanTerm = 0, traces = 0;
  for (let j = 0; j < d; j++) {
    const diff = a.mean[j]! - b.mean[j]!;
    meanTerm += diff * diff;
    traces += a.cov[j * d + j]! + b.cov[j * d + j]!;
  }
  return meanTerm + traces - 2 * traceSqrtProduct(a.cov, b.cov, d, 'frechetDistance');
}

/** Throws unless every row of probs (n, classes) is a probability distribution (to float32 rounding). */
function checkProbs(fn: string, probs: Rows, n: number, classes: number): void {
  checkRows(fn, 'probs', probs, n, classes, 'classes');
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < classes; c++) {
      const p = probs[i * classes + c]!;
      if (p < 0)
        throw new CtfError(
          `${fn}: probs row ${i}, class ${c} is ${p}, expected a probability ≥ 0 (pass softmax outputs, not logits)`,
        );
      s += p;
    }
    if (Math.abs(s - 1) > 1e-3)
      throw new CtfError(`${fn}: probs row ${i} sums to ${s}, expected 1 (pass softmax outputs, not logits)`);
  }
}

/**
 * exp(E_x KL(p(y|x) ‖ p(y))) on each of `splits` consecutive chunks of the rows (p(y) the chunk's mean
 * prediction), then the mean and population std (np.std) over chunks. Chunk s is rows
 * [⌊s·n/splits⌋, ⌊(s+1)·n/splits⌋) as in the ADM evaluator; when splits divides n this is exactly the
 * original Inception Score code. 0·log 0 = 0. Ranges from 1 (every prediction the same) to `classes`
 * (confident and balanced).
 */
export function inceptionScore(probs: Rows, n: number, classes: number, splits = 10): { mean: number; std: number } {
  const fn = 'inceptionScore';
  checkProbs(fn, probs, n, classes);
  if (!Number.isInteger(splits) || splits < 1 || splits > n)
    throw new CtfError(`inceptionScore: splits ${splits} must be an integer in [1, n = ${n}]`);
  const scores = new Float64Array(splits), py = new Float64Array(classes);
  for (let s = 0; s < splits; s++) {
    const start = Math.floor((s * n) / splits), end = Math.floor(((s + 1) * n) / splits);
    py.fill(0);
    for (let i = start; i < end; i++)
      for (let c = 0; c < classes; c++) py[c] = py[c]! + probs[i * classes + c]!;
    for (let c = 0; c < classes; c++) py[c] = py[c]! / (end - start);
    let kl = 0;
    for (let i = start; i < end; i++)
      for (let c = 0; c < classes; c++) {
        const p = probs[i * classes + c]!;
        if (p > 0) kl += p * (Math.log(p) - Math.log(py[c]!));
      }
    scores[s] = Math.exp(kl / (end - start));
  }
  let mean = 0;
  for (const x of scores) mean += x / splits;
  let v = 0;
  for (const x of scores) v += ((x - mean) * (x - mean)) / splits;
  return { mean, std: Math.sqrt(v) };
}

/** Share of rows whose most probable class (the lowest index among ties) is wanted[i]. */
export function classAccuracy(probs: Rows, n: number, classes: number, wanted: Int32Array): number {
  const fn = 'classAccuracy';
  checkRows(fn, 'probs', probs, n, classes, 'classes');
  if (wanted.length !== n)
    throw new CtfError(`${fn}: wanted has ${wanted.length} labels, expected one per row (n = ${n})`);
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const w = wanted[i]!;
    if (w < 0 || w >= classes) throw new CtfError(`${fn}: wanted[${i}] = ${w} is not a class in [0, ${classes})`);
    let best = 0;
    for (let c = 1; c < classes; c++) if (probs[i * classes + c]! > probs[i * classes + best]!) best = c;
    if (best === w) hits++;
  }
  return hits / n;
}

// ── precision / recall ────────────────────────────────────────────────────────────────────────────
//
// Squared distances come from sgemm in float32 row blocks (‖q‖² − 2 q·rᵀ + ‖r‖², both sets centred
// on the real mean first to limit cancellation), so 10000 × 10000 never needs the full matrix. float32
// can misjudge a point that sits on a radius, so every decision the float32 value cannot settle (its
// error bound straddles the threshold) is made on the exact float64 distance of the original rows:
// the result equals a brute-force float64 computation on the same float32 inputs.

/**
 * The factor e with |d̃ − d| ≤ e·(‖q‖² + ‖r‖²) for a GEMM distance d̃ of centred rows q, r against the exact
 * d: sgemm's dot-product error (dim·u), the float32 rounding of the product (u) and of the centred
 * inputs (4u), u = 2⁻²⁴, with a 4× margin.
 */
function distanceErrorFactor(dim: number): number {
  return 4 * (dim + 5) * 2 ** -24;
}

/** Rows of a distance block against `cols` reference rows: at most 2²² floats (16 MiB) per block. */
function defaultBlockRows(cols: number): number {
  return Math.max(1, Math.floor(2 ** 22 / cols));
}

/** Σ (x_i − y_j)² in float64 over the original (uncentred) rows. */
function exactDist(x: Float32Array, i: number, y: Float32Array, j: number, dim: number): number {
  let s = 0;
  for (let k = 0, xi = i * dim, yj = j * dim; k < dim; k++) {
    const t = x[xi + k]! - y[yj + k]!;
    s += t * t;
  }
  return s;
}

/** A set centred on `centre` and rounded to float32 for sgemm, with its rows' squared norms (float64). */
interface CentredRows { data: Float32Array; sq: Float64Array }

function centred(x: Float32Array, n: number, dim: number, centre: Float64Array): CentredRows {
  const data = new Float32Array(n * dim), sq = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < dim; k++) {
      const v = Math.fround(x[i * dim + k]! - centre[k]!);
      data[i * dim + k] = v;
      s += v * v;
    }
    sq[i] = s;
  }
  return { data, sq };
}

/**
 * Calls visit(i, approx) for every query row i with its approximate squared distances (nr) to all
 * reference rows; approx is reused, so read it before returning.
 */
function forEachDistanceRow(q: CentredRows, nq: number, r: CentredRows, nr: number, dim: number, blockRows: number,
  visit: (i: number, approx: Float64Array) => void): void {
  const block = new Float32Array(Math.min(blockRows, nq) * nr), row = new Float64Array(nr);
  for (let start = 0; start < nq; start += blockRows) {
    const rows = Math.min(blockRows, nq - start);
    // block (rows, nr) = −2 q[start:start+rows] · rᵀ
    sgemm(false, true, rows, nr, dim, -2, q.data, start * dim, dim, r.data, 0, dim, 0, block, 0, nr);
    for (let b = 0; b < rows; b++) {
      const i = start + b, qq = q.sq[i]!;
      for (let j = 0; j < nr; j++) row[j] = qq + r.sq[j]! + block[b * nr + j]!;
      visit(i, row);
    }
  }
}

/** Inserts v into the ascending k-smallest list `best` (length k, initialised to +∞). */
function keepSmallest(best: Float64Array, v: number): void {
  const k = best.length;
  if (!(v < best[k - 1]!)) return;
  let p = k - 1;
  while (p > 0 && best[p - 1]! > v) { best[p] = best[p - 1]!; p--; }
  best[p] = v;
}

/** Squared distance from each row of x to its k-th nearest other row, exact in float64. */
function knnRadii(x: Float32Array, c: CentredRows, n: number, dim: number, k: number, blockRows: number): Float64Array {
  const radii = new Float64Array(n), best = new Float64Array(k);
  const err = distanceErrorFactor(dim);
  forEachDistanceRow(c, n, c, n, dim, blockRows, (i, approx) => {
    // U = k-th smallest upper bound ≥ the true k-th distance; only rows whose lower bound ≤ U can be
    // among the k nearest, so their exact distances decide.
    best.fill(Infinity);
    for (let j = 0; j < n; j++) if (j !== i) keepSmallest(best, approx[j]! + err * (c.sq[i]! + c.sq[j]!));
    const upper = best[k - 1]!;
    best.fill(Infinity);
    for (let j = 0; j < n; j++)
      if (j !== i && approx[j]! - err * (c.sq[i]! + c.sq[j]!) <= upper) keepSmallest(best, exactDist(x, i, x, j, dim));
    radii[i] = best[k - 1]!;
  });
  return radii;
}

/** Share of query rows within the radius of at least one reference row (d ≤ radius, as the reference code). */
function shareInside(qx: Float32Array, q: CentredRows, nq: number, rx: Float32Array, r: CentredRows, nr: number,
  radii: Float64Array, dim: number, blockRows: number): number {
  const err = distanceErrorFactor(dim);
  let inside = 0;
  forEachDistanceRow(q, nq, r, nr, dim, blockRows, (i, approx) => {
    for (let j = 0; j < nr; j++) {
      const e = err * (q.sq[i]! + r.sq[j]!), d = approx[j]!, rad = radii[j]!;
      if (d - e > rad) continue;
      if (d + e <= rad || exactDist(qx, i, rx, j, dim) <= rad) { inside++; return; }
    }
  });
  return inside / nq;
}

export interface PrecisionRecallOptions {
  blockRows?: number;  // query rows per distance block; default keeps a block ≤ 16 MiB
}

/**
 * Improved precision and recall (Kynkäänniemi et al. 2019). Each set's manifold is the union of balls
 * around its rows with radius the distance to the row's k-th nearest neighbour in the same set (self
 * excluded). precision = share of fake rows inside the real manifold; recall = share of real rows
 * inside the fake manifold. real (nReal, dim), fake (nFake, dim); each set needs more than k rows.
 */
export function precisionRecall(
  real: Float32Array,
  fake: Float32Array,
  nReal: number,
  nFake: number,
  dim: number,
  k = 3,
  o: PrecisionRecallOptions = {},
): { precision: number; recall: number } {
  const fn = 'precisionRecall';
  checkRows(fn, 'real', real, nReal, dim, 'dim');
  checkRows(fn, 'fake', fake, nFake, dim, 'dim');
  if (!Number.isInteger(k) || k < 1) throw new CtfError(`${fn}: k ${k} must be a positive integer`);
  if (nReal <= k || nFake <= k)
    throw new CtfError(`${fn}: ${nReal} real and ${nFake} fake rows; each set needs more than k = ${k} rows`);
  const blockRows = o.blockRows;
  if (blockRows !== undefined && (!Number.isInteger(blockRows) || blockRows < 1))
    throw new CtfError(`${fn}: blockRows ${blockRows} must be a positive integer`);
  const centre = new Float64Array(dim);
  for (let i = 0; i < nReal; i++) for (let j = 0; j < dim; j++) centre[j] = centre[j]! + real[i * dim + j]! / nReal;
  const r = centred(real, nReal, dim, centre),
    f = centred(fake, nFake, dim, centre);
  const realRadii = knnRadii(real, r, nReal, dim, k, blockRows ?? defaultBlockRows(nReal));
  const fakeRadii = knnRadii(fake, f, nFake, dim, k, blockRows ?? defaultBlockRows(nFake));
  return {
    precision: shareInside(fake, f, nFake, real, r, nReal, realRadii, dim, blockRows ?? defaultBlockRows(nReal)),
    recall: shareInside(real, r, nReal, fake, f, nFake, fakeRadii, dim, blockRows ?? defaultBlockRows(nFake)),
  };
}
