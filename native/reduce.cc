// Sums over any set of axes. TypeScript (src/engine/ops/reduce.ts) coalesces the axes into
//   geom = [n, d_0 .. d_{n-1}, so_0 .. so_{n-1}]
// x is contiguous with dims d; element i of x lands in out at Σ idx_k * so_k (so_k = 0 on a reduced dim).
// The innermost dim is either kept (so = 1: rows add into out) or reduced (so = 0: a row sums to one value).
// The backward (broadcasting the gradient back) is stridedCopy in shape.cc with the same geometry.
#include "common.h"

namespace {

constexpr int MAX_DIMS = 8;

}  // namespace

// out[off(i)] += alpha * x[i]. args: x (Π d), out (extent of so), geom, alpha
CTF_KERNEL(sumAxes) {
  const float* x = ctf::f32(info, 0, "x");
  float* out = ctf::f32(info, 1, "out");
  const int32_t* v = ctf::i32(info, 2, "geom");
  size_t lv = ctf::len(info, 2);
  double alpha = ctf::number(info, 3, "alpha");
  int n = lv > 0 ? v[0] : 0;
  if (n < 1 || n > MAX_DIMS || lv != (size_t)(1 + 2 * n))
    ctf::fail(info, "sumAxes: geometry must be [n, dims(n), outStrides(n)] with 1 ≤ n ≤ 8");
  int64_t d[MAX_DIMS], so[MAX_DIMS];
  double total = 1, extent = 1;  // double: a hostile geometry cannot overflow past the checks
  for (int k = 0; k < n; k++) {
    d[k] = v[1 + k]; so[k] = v[1 + n + k];
    if (d[k] < 1 || so[k] < 0) ctf::fail(info, "sumAxes: bad geometry");
    total *= (double)d[k]; extent += (double)(d[k] - 1) * (double)so[k];
  }
  if (total != (double)ctf::len(info, 0)) ctf::fail(info, "sumAxes: x length does not match the geometry");
  if (extent > (double)ctf::len(info, 1)) ctf::fail(info, "sumAxes: geometry writes past the end of out");
  if (so[n - 1] > 1) ctf::fail(info, "sumAxes: innermost out stride must be 0 or 1");

  int64_t inner = d[n - 1], rows = (int64_t)total / inner;
  int64_t idx[MAX_DIMS] = {0}, oo = 0;
  bool keepInner = so[n - 1] == 1;
  float a = (float)alpha;
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * inner;  // (inner)
    if (keepInner) {
      float* o = out + oo;  // (inner)
#pragma omp simd
      for (int64_t j = 0; j < inner; j++) o[j] += a * xr[j];
    } else {
      // A reduced row sums in double: rows can be the whole tensor (sum of everything).
      double acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < inner; j++) acc += xr[j];
      out[oo] += (float)(alpha * acc);
    }
    for (int k = n - 2; k >= 0; k--) {
      oo += so[k];
      if (++idx[k] < d[k]) break;
      oo -= so[k] * d[k]; idx[k] = 0;
    }
  }
  return info.Env().Undefined();
}
