// k-means kernels (src/cluster/kmeans.ts): the nearest-centroid assignment and the k-means++ candidate
// potentials, both with distances as GEMMs (‖x‖² − 2 x·cᵀ + ‖c‖²) over fixed-size blocks that stay in
// cache. Blocks are split over two threads with single-threaded sgemm inside; block boundaries do not
// depend on the thread count, and partial sums are combined in block order, so results are the same
// whatever the number of threads.
#include <cblas.h>
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <thread>
#include <vector>
#include "common.h"

namespace {

double* f64(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    ctf::fail(info,
              std::string("native kernel: argument ") + std::to_string(i) + " (" + what + ") must be a Float64Array");
  return info[i].As<Napi::Float64Array>().Data();
}

// Runs body(block, thread scratch index) for every block < n on up to two threads (interleaved blocks).
void for_blocks(int64_t n, const std::function<void(int64_t, int)>& body) {
  const int T = (int)std::min<int64_t>(std::min(2, std::max(1, openblas_get_num_threads())), n);
  if (T <= 1) {
    for (int64_t b = 0; b < n; b++) body(b, 0);
    return;
  }
  const int prev = openblas_get_num_threads();
  openblas_set_num_threads(1);
  std::thread helper([&] { for (int64_t b = 1; b < n; b += 2) body(b, 1); });
  for (int64_t b = 0; b < n; b += 2) body(b, 0);
  helper.join();
  openblas_set_num_threads(prev);
}

// (K) ‖c_j‖² in double, stored as float.
std::vector<float> row_norms2(const float* c, int64_t K, int64_t D) {
  std::vector<float> out(K);
  for (int64_t j = 0; j < K; j++) {
    double s = 0;
    for (int64_t d = 0; d < D; d++) s += (double)c[j * D + d] * c[j * D + d];
    out[j] = (float)s;
  }
  return out;
}

constexpr int64_t kAssignRows = 64;      // rows per block: a (64, K) score block (128 KiB at K = 512)
constexpr int64_t kSeedCols = 2048;      // points per block in the k-means++ potentials

}  // namespace

// x (N, D), c (K, D) -> index (N) = argmin_j ‖c_j‖² − 2 x_i·c_j (= argmin ‖x_i − c_j‖²; lowest j among ties).
// args: x, N, D, c, K, index
CTF_KERNEL(kmeansAssign) {
  const float* x = ctf::f32(info, 0, "x");
  const int64_t N = ctf::integer(info, 1, "N"), D = ctf::integer(info, 2, "D");
  const float* c = ctf::f32(info, 3, "c");
  const int64_t K = ctf::integer(info, 4, "K");
  int32_t* index = ctf::i32(info, 5, "index");
  if (N < 0 || D <= 0 || K <= 0 || K > INT32_MAX) ctf::fail(info, "kmeansAssign: bad sizes");
  if ((int64_t)ctf::len(info, 0) != N * D || (int64_t)ctf::len(info, 3) != K * D || (int64_t)ctf::len(info, 5) != N)
    ctf::fail(info, "kmeansAssign: buffers are not x (N, D), c (K, D), index (N)");
  const std::vector<float> cc = row_norms2(c, K, D);
  std::vector<float> scratch(2 * kAssignRows * K);
  const int64_t blocks = (N + kAssignRows - 1) / kAssignRows;
  for_blocks(blocks, [&](int64_t b, int t) {
    float* score = scratch.data() + t * kAssignRows * K;  // (rows, K): ‖c_j‖² − 2 x_i·c_j
    const int64_t i0 = b * kAssignRows, rows = std::min(kAssignRows, N - i0);
    for (int64_t i = 0; i < rows; i++) std::copy(cc.begin(), cc.end(), score + i * K);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, K, D, -2.0f, x + i0 * D, D, c, D, 1.0f, score, K);
    for (int64_t i = 0; i < rows; i++) {
      const float* s = score + i * K;
      float m = std::numeric_limits<float>::infinity();
#pragma omp simd reduction(min : m)
      for (int64_t j = 0; j < K; j++) m = std::min(m, s[j]);
      int64_t best = 0;
      while (best < K - 1 && !(s[best] <= m)) best++;
      index[i0 + i] = (int32_t)best;
    }
  });
  return info.Env().Undefined();
}

// Greedy k-means++ step. x (N, D), xx (N) = ‖x_i‖², cand (L, D), closest (N) f64 = each point's squared
// distance to its nearest chosen centre -> dist (L, N) = max(0, ‖cand_l‖² − 2 cand_l·x_i + ‖x_i‖²),
// pot (L) f64 = Σ_i min(closest_i, dist_li), the potential if cand_l were added.
// args: x, N, D, xx, cand, L, closest, dist, pot
CTF_KERNEL(kmeansppPotentials) {
  const float* x = ctf::f32(info, 0, "x");
  const int64_t N = ctf::integer(info, 1, "N"), D = ctf::integer(info, 2, "D");
  const float* xx = ctf::f32(info, 3, "xx");
  const float* cand = ctf::f32(info, 4, "cand");
  const int64_t L = ctf::integer(info, 5, "L");
  const double* closest = f64(info, 6, "closest");
  float* dist = ctf::f32(info, 7, "dist");
  double* pot = f64(info, 8, "pot");
  if (N < 0 || D <= 0 || L <= 0) ctf::fail(info, "kmeansppPotentials: bad sizes");
  if ((int64_t)ctf::len(info, 0) != N * D || (int64_t)ctf::len(info, 3) != N || (int64_t)ctf::len(info, 4) != L * D ||
      (int64_t)ctf::len(info, 6) != N || (int64_t)ctf::len(info, 7) != L * N || (int64_t)ctf::len(info, 8) != L)
    ctf::fail(info,
              "kmeansppPotentials: buffers are not x (N, D), xx (N), cand (L, D), closest (N), dist (L, N), pot (L)");
  const std::vector<float> cc = row_norms2(cand, L, D);
  const int64_t blocks = (N + kSeedCols - 1) / kSeedCols;
  std::vector<double> partial(blocks * L);  // (blocks, L)
  for_blocks(blocks, [&](int64_t b, int) {
    const int64_t i0 = b * kSeedCols, cols = std::min(kSeedCols, N - i0);
    for (int64_t l = 0; l < L; l++) {
      float* row = dist + l * N + i0;
      for (int64_t i = 0; i < cols; i++) row[i] = cc[l] + xx[i0 + i];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, cols, D, -2.0f, cand, D, x + i0 * D, D, 1.0f, dist + i0, N);
    for (int64_t l = 0; l < L; l++) {
      float* row = dist + l * N + i0;
      const double* cl = closest + i0;
      double s = 0;
      for (int64_t i = 0; i < cols; i++) {
        row[i] = std::max(0.0f, row[i]);
        s += std::min(cl[i], (double)row[i]);
      }
      partial[b * L + l] = s;
    }
  });
  for (int64_t l = 0; l < L; l++) {
    double s = 0;
    for (int64_t b = 0; b < blocks; b++) s += partial[b * L + l];
    pot[l] = s;
  }
  return info.Env().Undefined();
}
