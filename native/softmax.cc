// Softmax, log-softmax over the last axis, and the fused cross-entropy: one pass over the logits computes
// the loss and writes its gradient, so the logits never get a second (N, V) buffer beyond that gradient.
// Every row is max-shifted before exp (numerically stable). x is seen as (R, V), R = length / V.
#include <algorithm>
#include <cmath>
#include <cstring>
#include "common.h"
#include "vecmath.h"

namespace {

using ctf::row_max;

// e (V) = exp(x (V) - m); returns Σ e.
inline float exp_shifted(const float* x, float m, float* e, int64_t V) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < V; j++) {
    e[j] = ctf::exp_vec(x[j] - m);
    s += e[j];
  }
  return s;
}

// Checks that a buffer of len elements is whole rows of V and returns the row count.
int64_t rows_of(const Napi::CallbackInfo& info, size_t len, int64_t V, const char* op) {
  if (V <= 0 || len % (size_t)V != 0)
    ctf::fail(info, std::string(op) + ": length is not a multiple of the last dimension");
  return (int64_t)len / V;
}

}  // namespace

// out (R, V) = softmax(x (R, V)) along V; out may be x. args: x, out, V
CTF_KERNEL(softmaxForward) {
  const float* x = ctf::f32(info, 0, "x");
  float* out = ctf::f32(info, 1, "out");
  int64_t V = ctf::integer(info, 2, "V");
  int64_t R = rows_of(info, ctf::len(info, 0), V, "softmaxForward");
  if (ctf::len(info, 1) != ctf::len(info, 0)) ctf::fail(info, "softmaxForward: x and out differ in length");
  for (int64_t r = 0; r < R; r++) {
    const float* xr = x + r * V;  // (V)
    float* yr = out + r * V;      // (V)
    float inv = 1.0f / exp_shifted(xr, row_max(xr, V), yr, V);
#pragma omp simd
    for (int64_t j = 0; j < V; j++) yr[j] *= inv;
  }
  return info.Env().Undefined();
}

// gx (R, V) += y ⊙ (g - Σ_j g_j y_j) with y = softmax output (R, V), g (R, V). args: y, g, gx, V
CTF_KERNEL(softmaxBackward) {
  const float* y = ctf::f32(info, 0, "y");
  const float* g = ctf::f32(info, 1, "g");
  float* gx = ctf::f32(info, 2, "gx");
  int64_t V = ctf::integer(info, 3, "V");
  int64_t R = rows_of(info, ctf::len(info, 0), V, "softmaxBackward");
  if (ctf::len(info, 1) != ctf::len(info, 0) || ctf::len(info, 2) != ctf::len(info, 0))
    ctf::fail(info, "softmaxBackward: y, g and gx must have the same length");
  for (int64_t r = 0; r < R; r++) {
    const float* yr = y + r * V;  // (V)
    const float* gr = g + r * V;  // (V)
    float* dr = gx + r * V;       // (V)
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < V; j++) dot += gr[j] * yr[j];
#pragma omp simd
    for (int64_t j = 0; j < V; j++) dr[j] += yr[j] * (gr[j] - dot);
  }
  return info.Env().Undefined();
}

// out (R, V) = x - max - log Σ exp(x - max), row-wise; out may be x. args: x, out, V
CTF_KERNEL(logSoftmaxForward) {
  const float* x = ctf::f32(info, 0, "x");
  float* out = ctf::f32(info, 1, "out");
  int64_t V = ctf::integer(info, 2, "V");
  int64_t R = rows_of(info, ctf::len(info, 0), V, "logSoftmaxForward");
  if (ctf::len(info, 1) != ctf::len(info, 0)) ctf::fail(info, "logSoftmaxForward: x and out differ in length");
  for (int64_t r = 0; r < R; r++) {
    const float* xr = x + r * V;  // (V)
    float* yr = out + r * V;      // (V), holds exp(x - max) until the last loop
    float m = row_max(xr, V);
    float shift = m + std::log(exp_shifted(xr, m, yr, V));
#pragma omp simd
    for (int64_t j = 0; j < V; j++) yr[j] = xr[j] - shift;
  }
  return info.Env().Undefined();
}

// gx (R, V) += g - exp(y) Σ_j g_j with y = log-softmax output (R, V). args: y, g, gx, V
CTF_KERNEL(logSoftmaxBackward) {
  const float* y = ctf::f32(info, 0, "y");
  const float* g = ctf::f32(info, 1, "g");
  float* gx = ctf::f32(info, 2, "gx");
  int64_t V = ctf::integer(info, 3, "V");
  int64_t R = rows_of(info, ctf::len(info, 0), V, "logSoftmaxBackward");
  if (ctf::len(info, 1) != ctf::len(info, 0) || ctf::len(info, 2) != ctf::len(info, 0))
    ctf::fail(info, "logSoftmaxBackward: y, g and gx must have the same length");
  for (int64_t r = 0; r < R; r++) {
    const float* yr = y + r * V;  // (V)
    const float* gr = g + r * V;  // (V)
    float* dr = gx + r * V;       // (V)
    float gs = 0;
#pragma omp simd reduction(+ : gs)
    for (int64_t j = 0; j < V; j++) gs += gr[j];
#pragma omp simd
    for (int64_t j = 0; j < V; j++) dr[j] += gr[j] - ctf::exp_vec(yr[j]) * gs;
  }
  return info.Env().Undefined();
}

// logits (R, V), targets (R) -> loss = mean over non-ignored rows of -log softmax(logits)[target], and, when
// dlogits (R, V) is given, dlogits = (softmax - onehot(target)) / count (zero rows for ignored targets).
// dlogits is the only (R, V) buffer; no other is allocated. Targets are all validated before anything is
// written. Returns {loss, count, bad}: bad = -1, or the position of the first target outside [0, V) that is
// not the ignore index. count = 0 gives loss NaN (as PyTorch does).
// args: logits, targets, V, hasIgnore, ignoreIndex, dlogits | null
CTF_KERNEL(crossEntropyForward) {
  const float* logits = ctf::f32(info, 0, "logits");
  const int32_t* targets = ctf::i32(info, 1, "targets");
  int64_t V = ctf::integer(info, 2, "V");
  bool hasIgnore = info[3].ToBoolean();
  int64_t ignore = ctf::integer(info, 4, "ignoreIndex");
  float* dlogits = nullptr;
  if (info.Length() > 5 && !info[5].IsNull() && !info[5].IsUndefined()) {
    dlogits = ctf::f32(info, 5, "dlogits");
    if (ctf::len(info, 5) != ctf::len(info, 0))
      ctf::fail(info, "crossEntropyForward: dlogits and logits differ in length");
  }
  int64_t R = rows_of(info, ctf::len(info, 0), V, "crossEntropyForward");
  if ((int64_t)ctf::len(info, 1) != R)
    ctf::fail(info, "crossEntropyForward: targets length differs from the number of rows");

  Napi::Object res = Napi::Object::New(info.Env());
  int64_t count = 0;
  for (int64_t r = 0; r < R; r++) {
    int64_t t = targets[r];
    if (hasIgnore && t == ignore) continue;
    if (t < 0 || t >= V) {
      res.Set("loss", NAN); res.Set("count", 0); res.Set("bad", (double)r);
      return res;
    }
    count++;
  }
  float invCount = count > 0 ? 1.0f / (float)count : 0.0f;
  double total = 0;
  for (int64_t r = 0; r < R; r++) {
    const float* xr = logits + r * V;  // (V)
    int64_t t = targets[r];
    bool ignored = hasIgnore && t == ignore;
    if (!dlogits) {
      if (ignored) continue;
      float m = row_max(xr, V), s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < V; j++) s += ctf::exp_vec(xr[j] - m);
      total += (double)std::log(s) + m - xr[t];
      continue;
    }
    float* dr = dlogits + r * V;  // (V)
    if (ignored) {
      std::fill(dr, dr + V, 0.0f);
      continue;
    }
    float m = row_max(xr, V);
    float s = exp_shifted(xr, m, dr, V);
    total += (double)std::log(s) + m - xr[t];
    float scale = invCount / s;
#pragma omp simd
    for (int64_t j = 0; j < V; j++) dr[j] *= scale;
    dr[t] -= invCount;
  }
  res.Set("loss", count > 0 ? total / (double)count : NAN);
  res.Set("count", (double)count);
  res.Set("bad", -1);
  return res;
}
