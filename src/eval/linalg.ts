// Dense float64 linear algebra for the evaluation metrics: the symmetric eigendecomposition and what
// the Fréchet distance builds from it. Matrices are row-major Float64Array (n × n); n is small (feature
// dimensions, up to a few hundred), so plain O(n³) loops are fast enough and keep everything in float64.
//
// Method: Householder reduction to tridiagonal form, then the implicit-shift QL algorithm on the
// tridiagonal matrix, accumulating both transformations into the eigenvectors — EISPACK's tred2/tql2 as
// given in JAMA (public domain). Both steps are orthogonal similarity transforms, so the method is
// backward stable: the computed pairs are exact for some A + E with ‖E‖₂ ≈ c·n·ε·‖A‖₂ (ε = 2⁻⁵²).
// Each eigenvalue is therefore accurate to about n·ε·‖A‖₂ in absolute terms (small eigenvalues have no
// better relative accuracy than that), and the eigenvectors are orthonormal to about n·ε. Cost ≈ 9n³
// flops: ~30 ms for n = 128. test/eval/metrics.test.ts checks reconstruction and orthonormality.
import { CtfError } from '../errors.js';

export interface SymmetricEigen {
  values: Float64Array; // (n) ascending
  vectors: Float64Array; // (n, n) row-major; column j is the unit eigenvector of values[j] (numpy.linalg.eigh's layout)
}

/** Throws unless a holds n × n finite numbers; `what` names the matrix in the message. */
function checkSquare(a: Float64Array, n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1) throw new CtfError(`${what}: size ${n} must be a positive integer`);
  if (a.length !== n * n) throw new CtfError(`${what}: ${a.length} numbers do not form an ${n} × ${n} matrix`);
  for (let i = 0; i < a.length; i++)
    if (!Number.isFinite(a[i]!))
      throw new CtfError(`${what}: element (${Math.floor(i / n)}, ${i % n}) is ${a[i]}, expected a finite number`);
}

/**
 * Eigenvalues (ascending) and orthonormal eigenvectors of the symmetric matrix a (n × n, row-major).
 * a must be symmetric up to rounding (|a_ij − a_ji| ≤ 1e-10·max|a|); only its lower triangle is read.
 */
export function symmetricEigen(a: Float64Array, n: number, what = 'symmetricEigen'): SymmetricEigen {
  checkSquare(a, n, what);
  let amax = 0;
  for (let i = 0; i < a.length; i++) amax = Math.max(amax, Math.abs(a[i]!));
  for (let i = 0; i < n; i++)
    for (let j = 0; j < i; j++)
      if (Math.abs(a[i * n + j]! - a[j * n + i]!) > 1e-10 * amax)
        throw new CtfError(
          `${what}: matrix is not symmetric: (${i}, ${j}) = ${a[i * n + j]} but (${j}, ${i}) = ${a[j * n + i]}`,
        );
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) v[i * n + j] = v[j * n + i] = a[i * n + j]!;
  const d = new Float64Array(n), e = new Float64Array(n);
  tridiagonalize(v, n, d, e);
  tridiagonalQl(v, n, d, e, what);
  sortAscending(v, n, d);
  return { values: d, vectors: v };
}

/**
 * Householder reduction (tred2): on return v holds the orthogonal Q with Qᵀ A Q tridiagonal, d its
 * diagonal and e its subdiagonal in e[1..n-1] (e[0] = 0).
 */
function tridiagonalize(v: Float64Array, n: number, d: Float64Array, e: Float64Array): void {
  for (let j = 0; j < n; j++) d[j] = v[(n - 1) * n + j]!;
  for (let i = n - 1; i > 0; i--) {
    // Scale the row to avoid under/overflow in the Householder vector's norm.
    let scale = 0, h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = v[(i - 1) * n + j]!;
        v[i * n + j] = 0;
        v[j * n + i] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] = d[k]! / scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      // Apply the similarity transform to the remaining columns.
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        v[j * n + i] = f;
        g = e[j]! + v[j * n + j]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += v[k * n + j]! * d[k]!;
          e[k] = e[k]! + v[k * n + j]! * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] = e[j]! / h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] = e[j]! - hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) v[k * n + j] = v[k * n + j]! - (f * e[k]! + g * d[k]!);
        d[j] = v[(i - 1) * n + j]!;
        v[i * n + j] = 0;
      }
    }
    d[i] = h;
  }
  // Accumulate the Householder reflections into v.
  for (let i = 0; i < n - 1; i++) {
    v[(n - 1) * n + i] = v[i * n + i]!;
    v[i * n + i] = 1;
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = v[k * n + i + 1]! / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += v[k * n + i + 1]! * v[k * n + j]!;
        for (let k = 0; k <= i; k++) v[k * n + j] = v[k * n + j]! - g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) v[k * n + i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = v[(n - 1) * n + j]!;
    v[(n - 1) * n + j] = 0;
  }
  v[(n - 1) * n + n - 1] = 1;
  e[0] = 0;
}

/**
 * Implicit-shift QL on the tridiagonal (d, e) from tridiagonalize (tql2), rotating v's columns along:
 * on return d holds the eigenvalues (unsorted) and v the eigenvectors.
 */
function tridiagonalQl(v: Float64Array, n: number, d: Float64Array, e: Float64Array, what: string): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  const eps = 2 ** -52, maxIter = 60;
  let f = 0, tst1 = 0;
  for (let l = 0; l < n; l++) {
    // Find a negligible subdiagonal element; d[l] is converged when it is e[l] itself.
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]!) > eps * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > maxIter)
          throw new CtfError(
            `${what}: QL iteration did not converge for eigenvalue ${l} of ${n} after ${maxIter} steps`,
          );
        // Wilkinson-style implicit shift from the leading 2 × 2 block.
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
        f += h;
        // One implicit QL sweep from m up to l.
        p = d[m]!;
        let c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0;
        const el1 = e[l + 1]!;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          for (let k = 0; k < n; k++) {
            const row = k * n;
            h = v[row + i + 1]!;
            v[row + i + 1] = s * v[row + i]! + c * h;
            v[row + i] = c * v[row + i]! - s * h;
          }
        }
        p = -s * s2 * c3 * el1 * e[l]! / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
}

/** Sorts d ascending, permuting v's columns along (selection sort: n swaps at most). */
function sortAscending(v: Float64Array, n: number, d: Float64Array): void {
  for (let i = 0; i < n - 1; i++) {
    let k = i;
    for (let j = i + 1; j < n; j++) if (d[j]! < d[k]!) k = j;
    if (k === i) continue;
    const t = d[k]!; d[k] = d[i]!; d[i] = t;
    for (let r = 0; r < n; r++) {
      const x = v[r * n + i]!; v[r * n + i] = v[r * n + k]!; v[r * n + k] = x;
    }
  }
}

/** C = A B for n × n row-major matrices, float64 (i-k-j order: rows of B stream through the cache). */
export function matMul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ci = i * n;
    for (let k = 0; k < n; k++) {
      const aik = a[ci + k]!, bk = k * n;
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) c[ci + j] = c[ci + j]! + aik * b[bk + j]!;
    }
  }
  return c;
}

/**
 * The symmetric square root of a symmetric positive semi-definite matrix: V diag(√max(λ, 0)) Vᵀ.
 * Eigenvalues below zero can only be rounding (a covariance is PSD), so they are clamped to 0.
 */
export function psdSqrt(a: Float64Array, n: number, what = 'psdSqrt'): Float64Array {
  const { values, vectors } = symmetricEigen(a, n, what);
  const root = values.map((x) => Math.sqrt(Math.max(x, 0)));
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += vectors[i * n + k]! * root[k]! * vectors[j * n + k]!;
      out[i * n + j] = out[j * n + i] = s;
    }
  return out;
}

/**
 * Tr((A B)^{1/2}) for symmetric PSD A and B, computed stably as Σ √λ over the eigenvalues λ (clamped
 * ≥ 0) of the symmetric PSD matrix A^{1/2} B A^{1/2}, which has the same eigenvalues as A B. Unlike a
 * general square root of the non-symmetric product (scipy.linalg.sqrtm), nothing here can turn complex
 * or need a diagonal offset when A or B is singular.
 */
export function traceSqrtProduct(a: Float64Array, b: Float64Array, n: number, what = 'traceSqrtProduct'): number {
  const ra = psdSqrt(a, n, `${what}: square root of the first matrix`);
  checkSquare(b, n, `${what}: second matrix`);
  const m = matMul(matMul(ra, b, n), ra, n);
  // Rounding leaves m asymmetric in the last bits; its symmetric part has the same trace of √.
  for (let i = 0; i < n; i++)
    for (let j = 0; j < i; j++) m[i * n + j] = m[j * n + i] = 0.5 * (m[i * n + j]! + m[j * n + i]!);
  const { values } = symmetricEigen(m, n, `${what}: A^{1/2} B A^{1/2}`);
  let tr = 0;
  for (const x of values) tr += Math.sqrt(Math.max(x, 0));
  return tr;
}
