// Fused kernels for transformer training: SwiGLU (silu(a)·b), also reading both halves of a fused w1|w3
// projection, the class-prefixed token embedding, and the residual add with dropout. (The GPT's inference
// passes are the model's own: gpt_infer.cc.)
#include <algorithm>
#include <cmath>
#include "common.h"
#include "parallel.h"
#include "vecmath.h"

namespace {

using ctf::exp_vec;  // vecmath.h
using ctf::split2;   // parallel.h

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
  split2(N, N * h, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* ai = a + offA + i * ld;
      const float* bi = b + offB + i * ld;
      float* o = out + i * h;
#pragma omp simd
      for (int64_t j = 0; j < h; j++) o[j] = ai[j] * sigmoid(ai[j]) * bi[j];
    }
  });
  return info.Env().Undefined();
}

// Adds the gradients of silu(a)·b given g (N, h) into da, db (same layout as a, b; empty skips), or with
// accumulate = false (both targets given) overwrites them.
// args: a, offA, b, offB, ld, g, da, db, N, h, accumulate
CTF_KERNEL(swigluBackward) {
  const float* a = ctf::f32(info, 0, "a");
  int64_t offA = ctf::integer(info, 1, "offA");
  const float* b = ctf::f32(info, 2, "b");
  int64_t offB = ctf::integer(info, 3, "offB"), ld = ctf::integer(info, 4, "ld");
  const float* g = ctf::f32(info, 5, "g");
  float* da = ctf::len(info, 6) ? ctf::f32(info, 6, "da") : nullptr;
  float* db = ctf::len(info, 7) ? ctf::f32(info, 7, "db") : nullptr;
  int64_t N = ctf::integer(info, 8, "N"), h = ctf::integer(info, 9, "h");
  const bool accumulate = info[10].ToBoolean();
  if (N <= 0 || h <= 0) return info.Env().Undefined();
  if (!accumulate && !(da && db)) ctf::fail(info, "swigluBackward: overwriting needs both gradients");
  if (offA + (N - 1) * ld + h > (int64_t)ctf::len(info, 0) || offB + (N - 1) * ld + h > (int64_t)ctf::len(info, 2) ||
      N * h > (int64_t)ctf::len(info, 5) || (da && offA + (N - 1) * ld + h > (int64_t)ctf::len(info, 6)) ||
      (db && offB + (N - 1) * ld + h > (int64_t)ctf::len(info, 7)))
    ctf::fail(info, "swigluBackward: views run past their buffers");
  split2(N, N * h, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* ai = a + offA + i * ld;
      const float* bi = b + offB + i * ld;
      const float* gi = g + i * h;
      float* dai = da ? da + offA + i * ld : nullptr;
      float* dbi = db ? db + offB + i * ld : nullptr;
      if (!accumulate) {
#pragma omp simd
        for (int64_t j = 0; j < h; j++) {
          float x = ai[j], s = sigmoid(x);
          dai[j] = gi[j] * bi[j] * s * (1.0f + x * (1.0f - s));
          dbi[j] = gi[j] * x * s;
        }
      } else if (dai && dbi) {
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
  });
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
  const auto len = [&](size_t i) { return (int64_t)ctf::len(info, i); };
  if (len(0) < nCls * D || len(3) < nTok * D || len(2) < B || len(5) < B * (L - 1) || len(6) < B * L * D)
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

// out = h + dropout(x): x's element i is dropped when uniform_at(seed, i) < p (the convention of the
// dropout kernel in elementwise.cc, with its optional element offset), kept ones are scaled by 1/(1-p);
// p = 0 is a plain sum. args: h, x, out, p, seed[, offset]
CTF_KERNEL(addDropoutForward) {
  const float* h = ctf::f32(info, 0, "h");
  const float* x = ctf::f32(info, 1, "x");
  float* out = ctf::f32(info, 2, "out");
  const float p = (float)ctf::number(info, 3, "p");
  const uint32_t seed = (uint32_t)ctf::integer(info, 4, "seed");
  const uint64_t off = ctf::offset_or_zero(info, 5);
  const int64_t n = (int64_t)ctf::len(info, 0);
  if ((int64_t)ctf::len(info, 1) != n || (int64_t)ctf::len(info, 2) != n)
    ctf::fail(info, "addDropoutForward: h, x, out differ in length");
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  split2(n, n, [&](int64_t i0, int64_t i1) {
    if (p == 0.0f) {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) out[i] = h[i] + x[i];
    } else {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++)
        out[i] = h[i] + (ctf::uniform_at(seed, off + (uint64_t)i) < p ? 0.0f : x[i] * scale);
    }
  });
  return info.Env().Undefined();
}

// gx (+)= g · keep(i)/(1-p) with the forward's mask (regenerated from the seed, never stored).
// args: g, gx, p, seed, accumulate[, offset]
CTF_KERNEL(addDropoutBackward) {
  const float* g = ctf::f32(info, 0, "g");
  float* gx = ctf::f32(info, 1, "gx");
  const float p = (float)ctf::number(info, 2, "p");
  const uint32_t seed = (uint32_t)ctf::integer(info, 3, "seed");
  const bool accumulate = info[4].ToBoolean();
  const uint64_t off = ctf::offset_or_zero(info, 5);
  const int64_t n = (int64_t)ctf::len(info, 0);
  if ((int64_t)ctf::len(info, 1) != n) ctf::fail(info, "addDropoutBackward: g and gx differ in length");
  const float scale = p == 0.0f ? 1.0f : p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  split2(n, n, [&](int64_t i0, int64_t i1) {
    if (accumulate) {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) gx[i] += ctf::uniform_at(seed, off + (uint64_t)i) < p ? 0.0f : g[i] * scale;
    } else {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) gx[i] = ctf::uniform_at(seed, off + (uint64_t)i) < p ? 0.0f : g[i] * scale;
    }
  });
  return info.Env().Undefined();
}
