// Vector quantisation pieces for the VQ tokenizer (LlamaGen's VectorQuantizer with l2-normalised codes):
// row l2-normalisation with its backward, the codeword gather with the squared error, and the backward of
// the codebook / commitment losses, and a nearest-codeword search for the small code dims of a VQ
// tokenizer (D = 8) that never materialises the (N, V) distance matrix.
#include <cblas.h>
#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>
#include "common.h"

namespace {
void check_rows(const Napi::CallbackInfo& info, const char* op, int64_t N, int64_t D) {
  if (N < 0 || D <= 0) ctf::fail(info, std::string(op) + ": bad sizes");
}
}  // namespace

// x (N, D) -> y (N, D) = x / max(‖x‖, eps), norm (N) = ‖x‖ (F.normalize(p=2, dim=-1)).
// args: x, y, norm, N, D, eps
CTF_KERNEL(l2NormalizeRowsForward) {
  const float* x = ctf::f32(info, 0, "x");
  float* y = ctf::f32(info, 1, "y");
  float* norm = ctf::f32(info, 2, "norm");
  const int64_t N = ctf::integer(info, 3, "N"), D = ctf::integer(info, 4, "D");
  const float eps = (float)ctf::number(info, 5, "eps");
  check_rows(info, "l2NormalizeRowsForward", N, D);
  if ((int64_t)ctf::len(info, 0) != N * D || (int64_t)ctf::len(info, 1) != N * D || (int64_t)ctf::len(info, 2) != N)
    ctf::fail(info, "l2NormalizeRowsForward: buffers are not x (N, D), y (N, D), norm (N)");
  for (int64_t i = 0; i < N; i++) {
    const float* xr = x + i * D;  // (D)
    double s = 0;
    for (int64_t k = 0; k < D; k++) s += (double)xr[k] * xr[k];
    const float n = (float)std::sqrt(s);
    norm[i] = n;
    const float inv = 1.0f / std::max(n, eps);
    for (int64_t k = 0; k < D; k++) y[i * D + k] = xr[k] * inv;
  }
  return info.Env().Undefined();
}

// dx (N, D) += (dy − y·(y·dy)) / ‖x‖ where ‖x‖ > eps, else dy / eps (the clamped branch is linear).
// args: y, norm, dy, dx, N, D, eps
CTF_KERNEL(l2NormalizeRowsBackward) {
  const float* y = ctf::f32(info, 0, "y");
  const float* norm = ctf::f32(info, 1, "norm");
  const float* dy = ctf::f32(info, 2, "dy");
  float* dx = ctf::f32(info, 3, "dx");
  const int64_t N = ctf::integer(info, 4, "N"), D = ctf::integer(info, 5, "D");
  const float eps = (float)ctf::number(info, 6, "eps");
  check_rows(info, "l2NormalizeRowsBackward", N, D);
  if ((int64_t)ctf::len(info, 0) != N * D || (int64_t)ctf::len(info, 1) != N || (int64_t)ctf::len(info, 2) != N * D ||
      (int64_t)ctf::len(info, 3) != N * D)
    ctf::fail(info, "l2NormalizeRowsBackward: buffers are not y (N, D), norm (N), dy (N, D), dx (N, D)");
  for (int64_t i = 0; i < N; i++) {
    const float* yr = y + i * D;    // (D)
    const float* gr = dy + i * D;   // (D)
    float* xr = dx + i * D;         // (D)
    if (norm[i] > eps) {
      double dot = 0;
      for (int64_t k = 0; k < D; k++) dot += (double)yr[k] * gr[k];
      const float inv = 1.0f / norm[i], d = (float)dot;
      for (int64_t k = 0; k < D; k++) xr[k] += (gr[k] - yr[k] * d) * inv;
    } else {
      for (int64_t k = 0; k < D; k++) xr[k] += gr[k] / eps;
    }
  }
  return info.Env().Undefined();
}

// zq (N, D) = codebook[index] for codebook (V, D); returns Σ (zq − z)² in double.
// args: z, codebook, V, index, zq, N, D
CTF_KERNEL(vqGatherForward) {
  const float* z = ctf::f32(info, 0, "z");
  const float* cb = ctf::f32(info, 1, "codebook");
  const int64_t V = ctf::integer(info, 2, "V");
  const int32_t* index = ctf::i32(info, 3, "index");
  float* zq = ctf::f32(info, 4, "zq");
  const int64_t N = ctf::integer(info, 5, "N"), D = ctf::integer(info, 6, "D");
  check_rows(info, "vqGatherForward", N, D);
  if ((int64_t)ctf::len(info, 0) != N * D || (int64_t)ctf::len(info, 1) != V * D || (int64_t)ctf::len(info, 3) != N ||
      (int64_t)ctf::len(info, 4) != N * D)
    ctf::fail(info, "vqGatherForward: buffers are not z (N, D), codebook (V, D), index (N), zq (N, D)");
  for (int64_t i = 0; i < N; i++)
    if (index[i] < 0 || index[i] >= V) ctf::fail(info, "vqGatherForward: index out of range");
  double sq = 0;
  for (int64_t i = 0; i < N; i++) {
    const float* c = cb + (int64_t)index[i] * D;  // (D)
    for (int64_t k = 0; k < D; k++) {
      const float d = c[k] - z[i * D + k];
      zq[i * D + k] = c[k];
      sq += (double)d * d;
    }
  }
  return Napi::Number::New(info.Env(), sq);
}

// With diff_i = codebook[index_i] − z_i:  dcodebook[index_i] += coef · diff_i  (codebook loss, z held fixed)
// and dz_i −= coef · diff_i (commitment loss, codebook held fixed). Either output may be null.
// args: z, codebook, V, index, N, D, coef, dz|null, dcodebook|null
CTF_KERNEL(vqLossBackward) {
  const float* z = ctf::f32(info, 0, "z");
  const float* cb = ctf::f32(info, 1, "codebook");
  const int64_t V = ctf::integer(info, 2, "V");
  const int32_t* index = ctf::i32(info, 3, "index");
  const int64_t N = ctf::integer(info, 4, "N"), D = ctf::integer(info, 5, "D");
  const float coef = (float)ctf::number(info, 6, "coef");
  float* dz = info[7].IsNull() ? nullptr : ctf::f32(info, 7, "dz");
  float* dcb = info[8].IsNull() ? nullptr : ctf::f32(info, 8, "dcodebook");
  check_rows(info, "vqLossBackward", N, D);
  if ((int64_t)ctf::len(info, 0) != N * D || (int64_t)ctf::len(info, 1) != V * D || (int64_t)ctf::len(info, 3) != N ||
      (dz && (int64_t)ctf::len(info, 7) != N * D) || (dcb && (int64_t)ctf::len(info, 8) != V * D))
    ctf::fail(info,
              "vqLossBackward: buffers are not z (N, D), codebook (V, D), index (N), dz (N, D), dcodebook (V, D)");
  for (int64_t i = 0; i < N; i++) {
    if (index[i] < 0 || index[i] >= V) ctf::fail(info, "vqLossBackward: index out of range");
    const float* c = cb + (int64_t)index[i] * D;  // (D)
    for (int64_t k = 0; k < D; k++) {
      const float d = coef * (c[k] - z[i * D + k]);
      if (dcb) dcb[(int64_t)index[i] * D + k] += d;
      if (dz) dz[i * D + k] -= d;
    }
  }
  return info.Env().Undefined();
}

namespace {
constexpr int64_t kRows = 4;   // code rows per tile: each loaded codeword vector feeds kRows FMAs
constexpr int64_t kLanes = 8;  // codewords per tile: one AVX2 vector

// Rows [r0, r1) of x (N, D) against cT (D, Vp) and cc (Vp) = ‖c‖² (Vp: V rounded up to kLanes, padded with
// +inf norms): index of the smallest ‖c‖² − 2 x·c, the lowest one among ties, and its squared distance.
// A (kRows × kLanes) tile of scores, each lane's running minimum and its index stay in registers.
void nearest_rows(const float* x, int64_t r0, int64_t r1, int64_t D, const float* cT, const float* cc, int64_t Vp,
                  int32_t* index, float* dist) {
  for (int64_t i0 = r0; i0 < r1; i0 += kRows) {
    const int64_t rows = std::min<int64_t>(kRows, r1 - i0);
    float xm2[16][kRows];  // (D, kRows): −2 x, zero for missing rows
    for (int64_t k = 0; k < D; k++)
      for (int64_t r = 0; r < kRows; r++) xm2[k][r] = r < rows ? -2.0f * x[(i0 + r) * D + k] : 0.0f;
    float best[kRows][kLanes];
    int32_t arg[kRows][kLanes];
    for (int64_t r = 0; r < kRows; r++)
      for (int64_t l = 0; l < kLanes; l++) { best[r][l] = INFINITY; arg[r][l] = 0; }
    for (int64_t j0 = 0; j0 < Vp; j0 += kLanes) {
      float acc[kRows][kLanes];
      for (int64_t r = 0; r < kRows; r++)
#pragma omp simd
        for (int64_t l = 0; l < kLanes; l++) acc[r][l] = cc[j0 + l];
      for (int64_t k = 0; k < D; k++) {
        const float* ck = cT + k * Vp + j0;  // (kLanes) k-th coordinate of the tile's codewords
        for (int64_t r = 0; r < kRows; r++) {
          const float a = xm2[k][r];
#pragma omp simd
          for (int64_t l = 0; l < kLanes; l++) acc[r][l] += a * ck[l];
        }
      }
      for (int64_t r = 0; r < kRows; r++)
#pragma omp simd
        for (int64_t l = 0; l < kLanes; l++) {
          const bool better = acc[r][l] < best[r][l];  // strict: a lane keeps its first (lowest) index on ties
          best[r][l] = better ? acc[r][l] : best[r][l];
          arg[r][l] = better ? (int32_t)(j0 + l) : arg[r][l];
        }
    }
    for (int64_t r = 0; r < rows; r++) {
      int64_t l0 = 0;
      for (int64_t l = 1; l < kLanes; l++)
        if (best[r][l] < best[r][l0] || (best[r][l] == best[r][l0] && arg[r][l] < arg[r][l0])) l0 = l;
      const float* xr = x + (i0 + r) * D;
      double xx = 0;
      for (int64_t k = 0; k < D; k++) xx += (double)xr[k] * xr[k];
      index[i0 + r] = arg[r][l0];
      dist[i0 + r] = std::max(0.0f, (float)(xx + best[r][l0]));
    }
  }
}
}  // namespace

// For x (N, D) and codebook (V, D), D ≤ 16: index (N) of the nearest codeword by squared Euclidean distance
// (lowest index among ties) and dist (N). Scores ‖c‖² − 2 x·c tile by tile in registers, rows split over the
// OpenBLAS thread count. args: x, N, D, codebook, V, index, dist
CTF_KERNEL(vqNearest) {
  const float* x = ctf::f32(info, 0, "x");
  const int64_t N = ctf::integer(info, 1, "N"), D = ctf::integer(info, 2, "D");
  const float* cb = ctf::f32(info, 3, "codebook");
  const int64_t V = ctf::integer(info, 4, "V");
  int32_t* index = ctf::i32(info, 5, "index");
  float* dist = ctf::f32(info, 6, "dist");
  if (N < 0 || D <= 0 || D > 16 || V <= 0 || V > INT32_MAX) ctf::fail(info, "vqNearest: bad sizes (D must be 1..16)");
  if ((int64_t)ctf::len(info, 0) != N * D || (int64_t)ctf::len(info, 3) != V * D || (int64_t)ctf::len(info, 5) != N ||
      (int64_t)ctf::len(info, 6) != N)
    ctf::fail(info, "vqNearest: buffer lengths do not match x (N, D), codebook (V, D), index (N), dist (N)");
  const int64_t Vp = (V + kLanes - 1) / kLanes * kLanes;
  std::vector<float> cT(D * Vp, 0.0f), cc(Vp, INFINITY);  // (D, Vp) transposed codebook, (Vp) squared norms
  for (int64_t j = 0; j < V; j++) {
    double s = 0;
    for (int64_t k = 0; k < D; k++) {
      const float c = cb[j * D + k];
      cT[k * Vp + j] = c;
      s += (double)c * c;
    }
    cc[j] = (float)s;
  }
  // Two threads pay off from about a million multiply-adds.
  const int64_t T = N * V * D < (1 << 20) ? 1 : std::max<int64_t>(1, std::min<int64_t>(openblas_get_num_threads(), 8));
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < T; t++)
    pool.emplace_back(nearest_rows, x, N * t / T, N * (t + 1) / T, D, cT.data(), cc.data(), Vp, index, dist);
  nearest_rows(x, 0, N / T, D, cT.data(), cc.data(), Vp, index, dist);
  for (auto& th : pool) th.join();
  return info.Env().Undefined();
}
