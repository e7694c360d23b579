// Fused kernels for the GPT: SwiGLU (silu(a)·b) reading both halves of the fused w1|w3 projection,
// the class-prefixed token embedding, and the inference-only residual-add + RMSNorm used by decoding.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include "common.h"

namespace {

// Vectorisable expf (Cephes range reduction + degree-6 polynomial, max relative error ~1e-7); libm's
// expf is a scalar call per element. Same algorithm as exp_vec in elementwise.cc and attention.cc.
inline float exp_vec(float x) {
  constexpr float LO = -103.97f, HI = 88.7228394f;
  float xc = x < LO ? LO : (x > HI ? HI : x);
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t n1 = (int32_t)n >> 1, n2 = (int32_t)n - n1;
  int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  float y = p * s1 * s2;
  return x < LO ? 0.0f : (x > HI ? INFINITY : y);
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_vec(-x)); }

}  // namespace

// out (N, h) = silu(a) · b, a and b rows at a + offA + i·ld and b + offB + i·ld (packed (N, 2h) or separate).
// args: a, offA, b, offB, ld, out, N, h
CTF_KERNEL(swigluForward) {
  const float* a = ctf::f32(info, 0, "a");
  int64_t offA = ctf::integer(info, 1, "offA");
  const float* b = ctf::f32(info, 2, "b");
  int64_t offB = ctf::integer(info, 3, "offB"), ld = ctf::integer(info, 4, "ld");
  float* out = ctf::f32(info, 5, "out");
  int64_t N = ctf::integer(info, 6, "N"), h = ctf::integer(info, 7, "h");
  if (N <= 0 || h <= 0) return info.Env().Undefined();
  if (offA + (N - 1) * ld + h > (int64_t)ctf::len(info, 0) || offB + (N - 1) * ld + h > (int64_t)ctf::len(info, 2) ||
      N * h > (int64_t)ctf::len(info, 5))
    ctf::fail(info, "swigluForward: views run past their buffers");
  for (int64_t i = 0; i < N; i++) {
    const float* ai = a + offA + i * ld;
    const float* bi = b + offB + i * ld;
    float* o = out + i * h;
#pragma omp simd
    for (int64_t j = 0; j < h; j++) o[j] = ai[j] * sigmoid(ai[j]) * bi[j];
  }
  return info.Env().Undefined();
}

// Adds the gradients of silu(a)·b given g (N, h) into da, db (same layout as a, b; empty skips).
// args: a, offA, b, offB, ld, g, da, db, N, h
CTF_KERNEL(swigluBackward) {
  const float* a = ctf::f32(info, 0, "a");
  int64_t offA = ctf::integer(info, 1, "offA");
  const float* b = ctf::f32(info, 2, "b");
  int64_t offB = ctf::integer(info, 3, "offB"), ld = ctf::integer(info, 4, "ld");
  const float* g = ctf::f32(info, 5, "g");
  float* da = ctf::len(info, 6) ? ctf::f32(info, 6, "da") : nullptr;
  float* db = ctf::len(info, 7) ? ctf::f32(info, 7, "db") : nullptr;
  int64_t N = ctf::integer(info, 8, "N"), h = ctf::integer(info, 9, "h");
  if (N <= 0 || h <= 0) return info.Env().Undefined();
  if (offA + (N - 1) * ld + h > (int64_t)ctf::len(info, 0) || offB + (N - 1) * ld + h > (int64_t)ctf::len(info, 2) ||
      N * h > (int64_t)ctf::len(info, 5) || (da && offA + (N - 1) * ld + h > (int64_t)ctf::len(info, 6)) ||
      (db && offB + (N - 1) * ld + h > (int64_t)ctf::len(info, 7)))
    ctf::fail(info, "swigluBackward: views run past their buffers");
  for (int64_t i = 0; i < N; i++) {
    const float* ai = a + offA + i * ld;
    const float* bi = b + offB + i * ld;
    const float* gi = g + i * h;
    float* dai = da ? da + offA + i * ld : nullptr;
    float* dbi = db ? db + offB + i * ld : nullptr;
    if (dai && dbi) {
#pragma omp simd
      for (int64_t j = 0; j < h; j++) {
        float x = ai[j], s = sigmoid(x);
        dai[j] += gi[j] * bi[j] * s * (1.0f + x * (1.0f - s));
        dbi[j] += gi[j] * x * s;
      }
    } else {
      for (int64_t j = 0; j < h; j++) {
        float x = ai[j], s = sigmoid(x);
        if (dai) dai[j] += gi[j] * bi[j] * s * (1.0f + x * (1.0f - s));
        if (dbi) dbi[j] += gi[j] * x * s;
      }
    }
  }
  return info.Env().Undefined();
}

// out (B, L, D): row 0 of each sequence is clsTable[classes[b]], rows 1.. are tokTable[tokens[b, i]]
// (tokens (B, L-1)). Returns -1 when all ids are in range, else the flat index of the first bad id
// (classes first: index b; tokens: B + flat token index) so TS can name it.
// args: clsTable, nCls, classes, tokTable, nTok, tokens, out, B, L, D
CTF_KERNEL(prefixEmbedForward) {
  const float* cls = ctf::f32(info, 0, "clsTable");
  int64_t nCls = ctf::integer(info, 1, "nCls");
  const int32_t* classes = ctf::i32(info, 2, "classes");
  const float* tok = ctf::f32(info, 3, "tokTable");
  int64_t nTok = ctf::integer(info, 4, "nTok");
  const int32_t* tokens = ctf::i32(info, 5, "tokens");
  float* out = ctf::f32(info, 6, "out");
  int64_t B = ctf::integer(info, 7, "B"), L = ctf::integer(info, 8, "L"), D = ctf::integer(info, 9, "D");
  if ((int64_t)ctf::len(info, 0) < nCls * D || (int64_t)ctf::len(info, 3) < nTok * D || (int64_t)ctf::len(info, 2) < B ||
      (int64_t)ctf::len(info, 5) < B * (L - 1) || (int64_t)ctf::len(info, 6) < B * L * D)
    ctf::fail(info, "prefixEmbedForward: buffers smaller than their shapes");
  for (int64_t b = 0; b < B; b++)
    if (classes[b] < 0 || classes[b] >= nCls) return Napi::Number::New(info.Env(), (double)b);
  for (int64_t i = 0; i < B * (L - 1); i++)
    if (tokens[i] < 0 || tokens[i] >= nTok) return Napi::Number::New(info.Env(), (double)(B + i));
  for (int64_t b = 0; b < B; b++) {
    float* o = out + b * L * D;
    std::copy(cls + classes[b] * D, cls + (classes[b] + 1) * D, o);
    for (int64_t i = 1; i < L; i++) {
      int64_t id = tokens[b * (L - 1) + i - 1];
      std::copy(tok + id * D, tok + (id + 1) * D, o + i * D);
    }
  }
  return Napi::Number::New(info.Env(), -1);
}

// Scatter-adds dout (B, L, D) into dCls / dTok (empty skips); ids were validated by the forward.
// args: dCls, classes, dTok, tokens, dout, B, L, D
CTF_KERNEL(prefixEmbedBackward) {
  float* dCls = ctf::len(info, 0) ? ctf::f32(info, 0, "dCls") : nullptr;
  const int32_t* classes = ctf::i32(info, 1, "classes");
  float* dTok = ctf::len(info, 2) ? ctf::f32(info, 2, "dTok") : nullptr;
  const int32_t* tokens = ctf::i32(info, 3, "tokens");
  const float* dout = ctf::f32(info, 4, "dout");
  int64_t B = ctf::integer(info, 5, "B"), L = ctf::integer(info, 6, "L"), D = ctf::integer(info, 7, "D");
  if ((int64_t)ctf::len(info, 4) < B * L * D) ctf::fail(info, "prefixEmbedBackward: dout smaller than (B, L, D)");
  for (int64_t b = 0; b < B; b++) {
    const float* g = dout + b * L * D;
    if (dCls) {
      float* r = dCls + (int64_t)classes[b] * D;
#pragma omp simd
      for (int64_t d = 0; d < D; d++) r[d] += g[d];
    }
    if (dTok)
      for (int64_t i = 1; i < L; i++) {
        float* r = dTok + (int64_t)tokens[b * (L - 1) + i - 1] * D;
        const float* gi = g + i * D;
#pragma omp simd
        for (int64_t d = 0; d < D; d++) r[d] += gi[d];
      }
  }
  return info.Env().Undefined();
}

// Inference only: h (N, D) += delta (if non-empty); out (N, D) = h · rsqrt(mean(h²) + eps) · w.
// args: h, delta, w, out, N, D, eps
CTF_KERNEL(addRmsNormRows) {
  float* h = ctf::f32(info, 0, "h");
  const float* delta = ctf::len(info, 1) ? ctf::f32(info, 1, "delta") : nullptr;
  const float* w = ctf::f32(info, 2, "w");
  float* out = ctf::f32(info, 3, "out");
  int64_t N = ctf::integer(info, 4, "N"), D = ctf::integer(info, 5, "D");
  float eps = (float)ctf::number(info, 6, "eps");
  if ((int64_t)ctf::len(info, 0) < N * D || (delta && (int64_t)ctf::len(info, 1) < N * D) || (int64_t)ctf::len(info, 2) < D ||
      (int64_t)ctf::len(info, 3) < N * D)
    ctf::fail(info, "addRmsNormRows: buffers smaller than (N, D)");
  for (int64_t i = 0; i < N; i++) {
    float* x = h + i * D;
    if (delta) {
      const float* dl = delta + i * D;
#pragma omp simd
      for (int64_t d = 0; d < D; d++) x[d] += dl[d];
    }
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t d = 0; d < D; d++) ss += x[d] * x[d];
    float r = 1.0f / std::sqrt(ss / (float)D + eps);
    float* o = out + i * D;
#pragma omp simd
    for (int64_t d = 0; d < D; d++) o[d] = x[d] * r * w[d];
  }
  return info.Env().Undefined();
}
