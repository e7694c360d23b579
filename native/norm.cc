// Normalisation layers, fused: each forward writes the output plus the per-row (per-group) statistics
// its backward needs (rstd, and mean for LayerNorm/GroupNorm); the backward recomputes x̂ from x.
// Statistics are accumulated in double; x, y and the gradients are float32 like torch's kernels.
// Backward kernels ADD into dx, dw, db; any of them (and the affine weight/bias) may be null.
#include <cmath>
#include <string>
#include <vector>
#include "common.h"
#include "parallel.h"
#include "vecmath.h"

namespace {

using ctf::f32_or_null;

void check_len(const Napi::CallbackInfo& info, const char* op, size_t i, int64_t need, const char* what) {
  if ((int64_t)ctf::len(info, i) != need)
    ctf::fail(info, std::string(op) + ": " + what + " has " + std::to_string(ctf::len(info, i)) +
                        " elements, expected " + std::to_string(need));
}

// Σ a[i] in double.
inline double sum(const float* a, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += a[i];
  return s;
}

// Σ (a[i] − m)² in double.
inline double sum_sq_dev(const float* a, int64_t n, double m) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) { double d = a[i] - m; s += d * d; }
  return s;
}

}  // namespace

// x (rows, D), w (D) -> y (rows, D) = x · rsqrt(mean(x²) + eps) · w;  rstd (rows) saved for backward.
// args: x, w, y, rstd, rows, D, eps
CTF_KERNEL(rmsNormForward) {
  const float* x = ctf::f32(info, 0, "x");
  const float* w = ctf::f32(info, 1, "weight");
  float* y = ctf::f32(info, 2, "y");
  float* rstd = ctf::f32(info, 3, "rstd");
  const int64_t rows = ctf::integer(info, 4, "rows"), D = ctf::integer(info, 5, "D");
  const double eps = ctf::number(info, 6, "eps");
  if (rows < 0 || D <= 0) ctf::fail(info, "rmsNormForward: bad sizes");
  check_len(info, "rmsNormForward", 0, rows * D, "x");
  check_len(info, "rmsNormForward", 1, D, "weight");
  check_len(info, "rmsNormForward", 2, rows * D, "y");
  check_len(info, "rmsNormForward", 3, rows, "rstd");
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * D;  // (D)
    float* yr = y + r * D;        // (D)
    const float rs = (float)(1.0 / std::sqrt(sum_sq_dev(xr, D, 0.0) / D + eps));
    rstd[r] = rs;
#pragma omp simd
    for (int64_t i = 0; i < D; i++) yr[i] = xr[i] * rs * w[i];
  }
  return info.Env().Undefined();
}

// x̂ = x·rstd, g = dy·w:  dx += rstd · (g − x̂ · mean(g·x̂));  dw += Σ_rows dy·x̂.
// args: x, w, rstd, dy, dx, dw, rows, D
CTF_KERNEL(rmsNormBackward) {
  const float* x = ctf::f32(info, 0, "x");
  const float* w = ctf::f32(info, 1, "weight");
  const float* rstd = ctf::f32(info, 2, "rstd");
  const float* dy = ctf::f32(info, 3, "dy");
  float* dx = f32_or_null(info, 4, "dx");
  float* dw = f32_or_null(info, 5, "dw");
  const int64_t rows = ctf::integer(info, 6, "rows"), D = ctf::integer(info, 7, "D");
  if (rows < 0 || D <= 0) ctf::fail(info, "rmsNormBackward: bad sizes");
  check_len(info, "rmsNormBackward", 0, rows * D, "x");
  check_len(info, "rmsNormBackward", 1, D, "weight");
  check_len(info, "rmsNormBackward", 2, rows, "rstd");
  check_len(info, "rmsNormBackward", 3, rows * D, "dy");
  if (dx) check_len(info, "rmsNormBackward", 4, rows * D, "dx");
  if (dw) check_len(info, "rmsNormBackward", 5, D, "dw");
  std::vector<double> dw_acc(dw ? D : 0);  // (D)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * D;    // (D)
    const float* dyr = dy + r * D;  // (D)
    const float rs = rstd[r];
    if (dx) {
      double gx = 0;  // Σ g·x̂
#pragma omp simd reduction(+ : gx)
      for (int64_t i = 0; i < D; i++) gx += (double)dyr[i] * w[i] * xr[i] * rs;
      const float c = (float)(gx / D);
      float* dxr = dx + r * D;
#pragma omp simd
      for (int64_t i = 0; i < D; i++) dxr[i] += rs * (dyr[i] * w[i] - xr[i] * rs * c);
    }
    if (dw) {
      double* acc = dw_acc.data();
#pragma omp simd
      for (int64_t i = 0; i < D; i++) acc[i] += (double)dyr[i] * (xr[i] * rs);
    }
  }
  if (dw) for (int64_t i = 0; i < D; i++) dw[i] += (float)dw_acc[i];
  return info.Env().Undefined();
}

// x (rows, D), w (D) or null, b (D) or null -> y (rows, D) = (x − mean)·rstd·w + b; mean, rstd (rows).
// args: x, w, b, y, mean, rstd, rows, D, eps
CTF_KERNEL(layerNormForward) {
  const float* x = ctf::f32(info, 0, "x");
  const float* w = f32_or_null(info, 1, "weight");
  const float* b = f32_or_null(info, 2, "bias");
  float* y = ctf::f32(info, 3, "y");
  float* mean = ctf::f32(info, 4, "mean");
  float* rstd = ctf::f32(info, 5, "rstd");
  const int64_t rows = ctf::integer(info, 6, "rows"), D = ctf::integer(info, 7, "D");
  const double eps = ctf::number(info, 8, "eps");
  if (rows < 0 || D <= 0) ctf::fail(info, "layerNormForward: bad sizes");
  check_len(info, "layerNormForward", 0, rows * D, "x");
  if (w) check_len(info, "layerNormForward", 1, D, "weight");
  if (b) check_len(info, "layerNormForward", 2, D, "bias");
  check_len(info, "layerNormForward", 3, rows * D, "y");
  check_len(info, "layerNormForward", 4, rows, "mean");
  check_len(info, "layerNormForward", 5, rows, "rstd");
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * D;  // (D)
    float* yr = y + r * D;        // (D)
    const double m = sum(xr, D) / D;
    const float rs = (float)(1.0 / std::sqrt(sum_sq_dev(xr, D, m) / D + eps)), mf = (float)m;
    mean[r] = mf;
    rstd[r] = rs;
#pragma omp simd
    for (int64_t i = 0; i < D; i++) yr[i] = (xr[i] - mf) * rs * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
  }
  return info.Env().Undefined();
}

// x̂ = (x − mean)·rstd, g = dy·w:  dx += rstd · (g − mean(g) − x̂ · mean(g·x̂));  dw += Σ dy·x̂;  db += Σ dy.
// args: x, w, mean, rstd, dy, dx, dw, db, rows, D
CTF_KERNEL(layerNormBackward) {
  const float* x = ctf::f32(info, 0, "x");
  const float* w = f32_or_null(info, 1, "weight");
  const float* mean = ctf::f32(info, 2, "mean");
  const float* rstd = ctf::f32(info, 3, "rstd");
  const float* dy = ctf::f32(info, 4, "dy");
  float* dx = f32_or_null(info, 5, "dx");
  float* dw = f32_or_null(info, 6, "dw");
  float* db = f32_or_null(info, 7, "db");
  const int64_t rows = ctf::integer(info, 8, "rows"), D = ctf::integer(info, 9, "D");
  if (rows < 0 || D <= 0) ctf::fail(info, "layerNormBackward: bad sizes");
  check_len(info, "layerNormBackward", 0, rows * D, "x");
  if (w) check_len(info, "layerNormBackward", 1, D, "weight");
  check_len(info, "layerNormBackward", 2, rows, "mean");
  check_len(info, "layerNormBackward", 3, rows, "rstd");
  check_len(info, "layerNormBackward", 4, rows * D, "dy");
  if (dx) check_len(info, "layerNormBackward", 5, rows * D, "dx");
  if (dw) check_len(info, "layerNormBackward", 6, D, "dw");
  if (db) check_len(info, "layerNormBackward", 7, D, "db");
  std::vector<double> dw_acc(dw ? D : 0), db_acc(db ? D : 0);  // (D) each
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * D;    // (D)
    const float* dyr = dy + r * D;  // (D)
    const float m = mean[r], rs = rstd[r];
    if (dx) {
      double g_sum = 0, gx_sum = 0;  // Σ g, Σ g·x̂
#pragma omp simd reduction(+ : g_sum, gx_sum)
      for (int64_t i = 0; i < D; i++) {
        const double g = (double)dyr[i] * (w ? w[i] : 1.0f);
        g_sum += g;
        gx_sum += g * ((xr[i] - m) * rs);
      }
      const float a = (float)(g_sum / D), c = (float)(gx_sum / D);
      float* dxr = dx + r * D;
#pragma omp simd
      for (int64_t i = 0; i < D; i++) dxr[i] += rs * (dyr[i] * (w ? w[i] : 1.0f) - a - (xr[i] - m) * rs * c);
    }
    if (dw) {
      double* acc = dw_acc.data();
#pragma omp simd
      for (int64_t i = 0; i < D; i++) acc[i] += (double)dyr[i] * ((xr[i] - m) * rs);
    }
    if (db) {
      double* acc = db_acc.data();
#pragma omp simd
      for (int64_t i = 0; i < D; i++) acc[i] += dyr[i];
    }
  }
  if (dw) for (int64_t i = 0; i < D; i++) dw[i] += (float)dw_acc[i];
  if (db) for (int64_t i = 0; i < D; i++) db[i] += (float)db_acc[i];
  return info.Env().Undefined();
}

// x (N, C, HW) in G groups of C/G channels; w, b (C) or null -> y (N, C, HW); mean, rstd (N, G).
// silu: y = silu(groupNorm(x)) instead, in the same pass (inference only: the backward of the fused form
// is not kept; src/engine/ops/norm.ts groupNormSilu falls back to two ops when a gradient is needed).
// Groups are independent, so the (n, g) pairs are split over two threads.
// args: x, w, b, y, mean, rstd, N, C, HW, G, eps, silu
CTF_KERNEL(groupNormForward) {
  const float* x = ctf::f32(info, 0, "x");
  const float* w = f32_or_null(info, 1, "weight");
  const float* b = f32_or_null(info, 2, "bias");
  float* y = ctf::f32(info, 3, "y");
  float* mean = ctf::f32(info, 4, "mean");
  float* rstd = ctf::f32(info, 5, "rstd");
  const int64_t N = ctf::integer(info, 6, "N"), C = ctf::integer(info, 7, "C"), HW = ctf::integer(info, 8, "HW"),
                G = ctf::integer(info, 9, "G");
  const double eps = ctf::number(info, 10, "eps");
  const bool silu = info[11].ToBoolean();
  if (N < 0 || C <= 0 || HW <= 0 || G <= 0 || C % G != 0)
    ctf::fail(info, "groupNormForward: bad sizes (C must divide into G groups)");
  check_len(info, "groupNormForward", 0, N * C * HW, "x");
  if (w) check_len(info, "groupNormForward", 1, C, "weight");
  if (b) check_len(info, "groupNormForward", 2, C, "bias");
  check_len(info, "groupNormForward", 3, N * C * HW, "y");
  check_len(info, "groupNormForward", 4, N * G, "mean");
  check_len(info, "groupNormForward", 5, N * G, "rstd");
  const int64_t Cg = C / G, S = Cg * HW;  // channels and elements per group
  ctf::split2(N * G, N * C * HW, [&](int64_t g0, int64_t g1) {
    for (int64_t ng = g0; ng < g1; ng++) {
      const float* xg = x + ng * S;  // (Cg, HW), contiguous
      float* yg = y + ng * S;
      const double m = sum(xg, S) / S;
      const float rs = (float)(1.0 / std::sqrt(sum_sq_dev(xg, S, m) / S + eps)), mf = (float)m;
      mean[ng] = mf;
      rstd[ng] = rs;
      const int64_t c0 = (ng % G) * Cg;
      for (int64_t c = 0; c < Cg; c++) {
        const float scale = rs * (w ? w[c0 + c] : 1.0f), shift = (b ? b[c0 + c] : 0.0f) - mf * scale;
        const float* xc = xg + c * HW;
        float* yc = yg + c * HW;
        if (silu) {
#pragma omp simd
          for (int64_t i = 0; i < HW; i++) {
            const float v = xc[i] * scale + shift;
            yc[i] = v / (1.0f + ctf::exp_vec(-v));
          }
        } else {
#pragma omp simd
          for (int64_t i = 0; i < HW; i++) yc[i] = xc[i] * scale + shift;
        }
      }
    }
  });
  return info.Env().Undefined();
}

// Per group: x̂ = (x − mean)·rstd, g = dy·w[c]:  dx += rstd · (g − mean(g) − x̂ · mean(g·x̂));
// dw[c] += Σ_{n,hw} dy·x̂;  db[c] += Σ_{n,hw} dy.
// args: x, w, mean, rstd, dy, dx, dw, db, N, C, HW, G
CTF_KERNEL(groupNormBackward) {
  const float* x = ctf::f32(info, 0, "x");
  const float* w = f32_or_null(info, 1, "weight");
  const float* mean = ctf::f32(info, 2, "mean");
  const float* rstd = ctf::f32(info, 3, "rstd");
  const float* dy = ctf::f32(info, 4, "dy");
  float* dx = f32_or_null(info, 5, "dx");
  float* dw = f32_or_null(info, 6, "dw");
  float* db = f32_or_null(info, 7, "db");
  const int64_t N = ctf::integer(info, 8, "N"), C = ctf::integer(info, 9, "C"), HW = ctf::integer(info, 10, "HW"),
                G = ctf::integer(info, 11, "G");
  if (N < 0 || C <= 0 || HW <= 0 || G <= 0 || C % G != 0)
    ctf::fail(info, "groupNormBackward: bad sizes (C must divide into G groups)");
  check_len(info, "groupNormBackward", 0, N * C * HW, "x");
  if (w) check_len(info, "groupNormBackward", 1, C, "weight");
  check_len(info, "groupNormBackward", 2, N * G, "mean");
  check_len(info, "groupNormBackward", 3, N * G, "rstd");
  check_len(info, "groupNormBackward", 4, N * C * HW, "dy");
  if (dx) check_len(info, "groupNormBackward", 5, N * C * HW, "dx");
  if (dw) check_len(info, "groupNormBackward", 6, C, "dw");
  if (db) check_len(info, "groupNormBackward", 7, C, "db");
  const int64_t Cg = C / G, S = Cg * HW;
  std::vector<double> dw_acc(C, 0.0), db_acc(C, 0.0);  // (C) each
  for (int64_t ng = 0; ng < N * G; ng++) {
    const float* xg = x + ng * S;    // (Cg, HW)
    const float* dyg = dy + ng * S;  // (Cg, HW)
    const float m = mean[ng], rs = rstd[ng];
    const int64_t c0 = (ng % G) * Cg;
    double g_sum = 0, gx_sum = 0;  // Σ g, Σ g·x̂ over the group
    for (int64_t c = 0; c < Cg; c++) {
      const float* xc = xg + c * HW;
      const float* dyc = dyg + c * HW;
      double dy_sum = 0, dyx_sum = 0;  // Σ dy, Σ dy·x̂ over this channel's pixels
#pragma omp simd reduction(+ : dy_sum, dyx_sum)
      for (int64_t i = 0; i < HW; i++) {
        dy_sum += dyc[i];
        dyx_sum += (double)dyc[i] * ((xc[i] - m) * rs);
      }
      const double wc = w ? w[c0 + c] : 1.0;
      g_sum += wc * dy_sum;
      gx_sum += wc * dyx_sum;
      dw_acc[c0 + c] += dyx_sum;
      db_acc[c0 + c] += dy_sum;
    }
    if (!dx) continue;
    const float a = (float)(g_sum / S), k = (float)(gx_sum / S);
    for (int64_t c = 0; c < Cg; c++) {
      const float wc = w ? w[c0 + c] : 1.0f;
      const float* xc = xg + c * HW;
      const float* dyc = dyg + c * HW;
      float* dxc = dx + ng * S + c * HW;
#pragma omp simd
      for (int64_t i = 0; i < HW; i++) dxc[i] += rs * (dyc[i] * wc - a - (xc[i] - m) * rs * k);
    }
  }
  if (dw) for (int64_t c = 0; c < C; c++) dw[c] += (float)dw_acc[c];
  if (db) for (int64_t c = 0; c < C; c++) db[c] += (float)db_acc[c];
  return info.Env().Undefined();
}
