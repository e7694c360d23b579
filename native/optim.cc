// Optimizer kernels: one fused AdamW update per parameter, and the two passes of gradient clipping.
#include <cmath>
#include <string>
#include "common.h"

// One AdamW step on one parameter, in place, the arithmetic of torch.optim.AdamW (single-tensor path):
//   p ← p·(1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²;
//   p ← p − stepSize · m / (√v / √bc2 + eps),  stepSize = lr / bc1,  bc_i = 1 − β_i^step.
// p, g, m, v (n). decay is lr·wd (0 for parameters without weight decay).
// args: p, g, m, v, decay, beta1, beta2, eps, stepSize, bc2Sqrt
CTF_KERNEL(adamwStep) {
  float* p = ctf::f32(info, 0, "param");
  const float* g = ctf::f32(info, 1, "grad");
  float* m = ctf::f32(info, 2, "exp_avg");
  float* v = ctf::f32(info, 3, "exp_avg_sq");
  const size_t n = ctf::len(info, 0);
  if (ctf::len(info, 1) != n || ctf::len(info, 2) != n || ctf::len(info, 3) != n)
    ctf::fail(info,
              "adamwStep: param, grad, exp_avg and exp_avg_sq must have the same length (" + std::to_string(n) + ")");
  const float keep = (float)(1.0 - ctf::number(info, 4, "decay"));
  const float b1 = (float)ctf::number(info, 5, "beta1"), b2 = (float)ctf::number(info, 6, "beta2");
  const float eps = (float)ctf::number(info, 7, "eps");
  const float step_size = (float)ctf::number(info, 8, "stepSize"), bc2_sqrt = (float)ctf::number(info, 9, "bc2Sqrt");
  const float a1 = 1.0f - b1, a2 = 1.0f - b2;
#pragma omp simd
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = m[i] * b1 + gi * a1;
    const float vi = v[i] * b2 + gi * gi * a2;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * keep - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
  }
  return info.Env().Undefined();
}

// Σ g² in double (clipGradNorm's first pass).
// args: g
CTF_KERNEL(optimSumSquares) {
  const float* g = ctf::f32(info, 0, "grad");
  const size_t n = ctf::len(info, 0);
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
  return Napi::Number::New(info.Env(), s);
}

// g ← g · scale, in place.
// args: g, scale
CTF_KERNEL(optimScale) {
  float* g = ctf::f32(info, 0, "grad");
  const size_t n = ctf::len(info, 0);
  const float s = (float)ctf::number(info, 1, "scale");
#pragma omp simd
  for (size_t i = 0; i < n; i++) g[i] *= s;
  return info.Env().Undefined();
}
