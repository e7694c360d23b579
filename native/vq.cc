// Vector quantisation pieces for the VQ tokenizer (LlamaGen's VectorQuantizer with l2-normalised codes):
// row l2-normalisation with its backward, the codeword gather with the squared error, and the backward of
// the codebook / commitment losses. The nearest-codeword search itself is nearestRows (sampling.cc).
#include <cmath>
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
    ctf::fail(info, "vqLossBackward: buffers are not z (N, D), codebook (V, D), index (N), dz (N, D), dcodebook (V, D)");
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
