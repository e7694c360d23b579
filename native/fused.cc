// Fused kernels for the GPT: SwiGLU (silu(a)·b) reading both halves of the fused w1|w3 projection,
// the class-prefixed token embedding, and a whole KV-cached decoding step (every layer and the head in
// one call, on two threads).
#include <cblas.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include "common.h"
#include "parallel.h"
#include "vecmath.h"

namespace ctf {
// native/attention.cc: one decoding step's attention for rows n0 ≤ n < n1.
void decode_attention_rows(const float* qkv, float* kt, float* vc, const float* cos, const float* sin, float* out,
                           int64_t n0, int64_t n1, int64_t H, int64_t hd, int64_t maxT, int64_t ldk, int64_t pos,
                           float scale, float* scratch);
// native/attention.cc: attention of whole sequences b0 ≤ b < b1 of a rotated, scaled fused qkv.
void attention_sequences(const float* qkv, float* out, int64_t b0, int64_t b1, int64_t B, int64_t T, int64_t H, int64_t hd,
                         bool causal);
// native/rope.cc: ropeQkvInPlace on rows n0 ≤ n < n1.
void rope_qkv_rows(float* qkv, const float* cos, const float* sin, int64_t n0, int64_t n1, int64_t T, int64_t H, int64_t hd,
                   float scale, bool inverse);
}  // namespace ctf

namespace {

using ctf::exp_vec;  // vecmath.h
using ctf::split2;   // parallel.h

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_vec(-x)); }

// out rows r0 ≤ i < r1 = h · rsqrt(mean(h²) + eps) · w, rows of D.
inline void rms_norm_rows(const float* h, const float* w, float* out, int64_t r0, int64_t r1, int64_t D, float eps) {
  for (int64_t i = r0; i < r1; i++) {
    const float* x = h + i * D;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t d = 0; d < D; d++) ss += x[d] * x[d];
    const float r = 1.0f / std::sqrt(ss / (float)D + eps);
    float* o = out + i * D;
#pragma omp simd
    for (int64_t d = 0; d < D; d++) o[d] = x[d] * r * w[d];
  }
}

// Columns c0 ≤ c < c1 of C (M × ldc) (= or, with beta 1, +=) A (M × K) · Bᵀ, B (· × K) a weight matrix:
// the outputs c0..c1 of a linear layer, so two threads can each pack only their half of the weights.
inline void linear_cols(const float* A, int64_t M, int64_t K, const float* B, float* C, int64_t ldc, int64_t c0, int64_t c1,
                        float beta) {
  if (c1 <= c0 || M == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, c1 - c0, K, 1.0f, A, K, B + c0 * K, K, beta, C + c0, ldc);
}

// Rows r0 ≤ i < r1 of C (· × N) (= or, with beta 1, +=) A (· × K) · Bᵀ, B (N × K) a weight matrix: a linear
// layer over some of the rows.
inline void linear_rows(const float* A, int64_t r0, int64_t r1, int64_t K, const float* B, int64_t N, float* C, float beta) {
  if (r1 <= r0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, N, K, 1.0f, A + r0 * K, K, B, K, beta, C + r0 * N, N);
}

// A Float32Array element i of a JS array with at least n elements, else a clear error naming the kernel.
float* array_f32(const Napi::CallbackInfo& info, const char* kernel, Napi::Array arr, uint32_t i, int64_t n, const char* what) {
  Napi::Value v = arr.Get(i);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
      (int64_t)v.As<Napi::TypedArray>().ElementLength() < n)
    ctf::fail(info, std::string(kernel) + ": " + what + " " + std::to_string(i) + " must be a Float32Array of ≥ " + std::to_string(n));
  return v.As<Napi::Float32Array>().Data();
}

// One transformer block's weights, read from a JS array of 6 per block (attnNorm, wqkv, wo, ffnNorm, w13, w2).
struct Block {
  const float *attnNorm, *wqkv, *wo, *ffnNorm, *w13, *w2;
};
std::vector<Block> read_blocks(const Napi::CallbackInfo& info, const char* kernel, Napi::Array arr, int64_t L, int64_t D, int64_t hid) {
  if ((int64_t)arr.Length() != 6 * L) ctf::fail(info, std::string(kernel) + ": need 6 weights per block");
  const int64_t sizes[6] = {D, 3 * D * D, D * D, D, 2 * hid * D, D * hid};
  std::vector<Block> blocks(L);
  for (int64_t l = 0; l < L; l++) {
    const float* w[6];
    for (int i = 0; i < 6; i++) w[i] = array_f32(info, kernel, arr, (uint32_t)(6 * l + i), sizes[i], "layer weight");
    blocks[l] = {w[0], w[1], w[2], w[3], w[4], w[5]};
  }
  return blocks;
}

// The residual stream h (·, D) and the per-row scratch of a block: x (·, D), qkv (·, 3D), att (·, D),
// ab (·, 2·hid), g (·, hid); arguments 0 … 5 of both GPT kernels.
struct Stream {
  float *h, *x, *qkv, *att, *ab, *g;
};
Stream read_stream(const Napi::CallbackInfo& info) {
  return {ctf::f32(info, 0, "h"), ctf::f32(info, 1, "x"), ctf::f32(info, 2, "qkv"), ctf::f32(info, 3, "att"),
          ctf::f32(info, 4, "ab"), ctf::f32(info, 5, "g")};
}

// One pre-norm block on rows r0 ≤ i < r1 of the stream:
//   h += wo · attend(wqkv · rmsNorm(h));  h += w2 · (silu(w1 x) · w3 x), x = rmsNorm(h).
// attend() turns those rows of qkv into att.
template <class Attend>
void block_rows(const Block& b, const Stream& st, int64_t r0, int64_t r1, int64_t D, int64_t hid, float eps, Attend attend) {
  float *h = st.h, *x = st.x, *qkv = st.qkv, *att = st.att, *ab = st.ab, *g = st.g;
  rms_norm_rows(h, b.attnNorm, x, r0, r1, D, eps);
  linear_rows(x, r0, r1, D, b.wqkv, 3 * D, qkv, 0.0f);
  attend();
  linear_rows(att, r0, r1, D, b.wo, D, h, 1.0f);  // h += att · woᵀ
  rms_norm_rows(h, b.ffnNorm, x, r0, r1, D, eps);
  linear_rows(x, r0, r1, D, b.w13, 2 * hid, ab, 0.0f);
  for (int64_t n = r0; n < r1; n++) {
    const float* a = ab + n * 2 * hid;
    float* o = g + n * hid;
#pragma omp simd
    for (int64_t j = 0; j < hid; j++) o[j] = a[j] * sigmoid(a[j]) * a[hid + j];
  }
  linear_rows(g, r0, r1, hid, b.w2, D, h, 1.0f);  // h += g · w2ᵀ
}

// Two threads meeting between the phases of a decode step. Spins (phases last microseconds), yielding
// after a while in case the other vCPU is descheduled.
class Barrier2 {
  std::atomic<int> arrived{0};
  std::atomic<int> phase{0};

 public:
  void wait() {
    const int ph = phase.load(std::memory_order_acquire);
    if (arrived.fetch_add(1, std::memory_order_acq_rel) == 1) {
      arrived.store(0, std::memory_order_relaxed);
      phase.store(ph + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; phase.load(std::memory_order_acquire) == ph; spins++)
      if (spins > 2000) std::this_thread::yield();
  }
};

// Thread t's part [lo, hi) of n items; the split point is rounded to 16 so GEMM column blocks stay aligned.
inline std::pair<int64_t, int64_t> part(int64_t n, int t, int64_t align = 16) {
  int64_t mid = std::min(n, (n / 2 + align - 1) / align * align);
  return t == 0 ? std::pair<int64_t, int64_t>{0, mid} : std::pair<int64_t, int64_t>{mid, n};
}

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

// A whole KV-cached decoding step of the GPT (src/models/kv-cache.ts) in one call, on two threads (OpenBLAS
// single-threaded inside): each takes half of the rows through every block, then both meet once and split
// the output head by columns, so each packs only half of its V rows.
// h (N, D) holds the input embeddings and is the residual stream; x (N, D), qkv (N, 3D), att (N, D),
// ab (N, 2·hid), g (N, hid) are scratch; logits (N, V) receives the output.
// args: h, x, qkv, att, ab, g, logits, layers (array of 6·L: attnNorm, wqkv, wo, ffnNorm, w13, w2 per layer),
//       kCaches (array of L, (N, H, hd, ldk)), vCaches (array of L, (N, H, maxT, hd)), cos, sin (hd/2, for pos),
//       norm (D), output (V, D), N, D, H, hid, V, maxT, ldk, pos, eps
CTF_KERNEL(gptDecodeStep) {
  const Stream st = read_stream(info);
  float *h = st.h, *x = st.x, *qkv = st.qkv, *att = st.att;
  float* logits = ctf::f32(info, 6, "logits");
  if (!info[7].IsArray() || !info[8].IsArray() || !info[9].IsArray()) ctf::fail(info, "gptDecodeStep: layers, kCaches, vCaches must be arrays");
  Napi::Array layerArr = info[7].As<Napi::Array>(), kArr = info[8].As<Napi::Array>(), vArr = info[9].As<Napi::Array>();
  const float* cos = ctf::f32(info, 10, "cos");
  const float* sin = ctf::f32(info, 11, "sin");
  const float* normW = ctf::f32(info, 12, "norm");
  const float* outW = ctf::f32(info, 13, "output");
  const int64_t N = ctf::integer(info, 14, "N"), D = ctf::integer(info, 15, "D"), H = ctf::integer(info, 16, "H"),
                hid = ctf::integer(info, 17, "hid"), V = ctf::integer(info, 18, "V"), maxT = ctf::integer(info, 19, "maxT"),
                ldk = ctf::integer(info, 20, "ldk"), pos = ctf::integer(info, 21, "pos");
  const float eps = (float)ctf::number(info, 22, "eps");
  const int64_t L = kArr.Length(), hd = D / H;
  if (N < 1 || H < 1 || D % H != 0 || hd % 2 != 0 || pos < 0 || pos >= maxT || ldk < (maxT + 15) / 16 * 16)
    ctf::fail(info, "gptDecodeStep: inconsistent dimensions");
  if ((int64_t)vArr.Length() != L) ctf::fail(info, "gptDecodeStep: need a key and a value cache per layer");
  auto need = [&](size_t i, int64_t n, const char* what) {
    if ((int64_t)ctf::len(info, i) < n) ctf::fail(info, std::string("gptDecodeStep: ") + what + " is smaller than its shape");
  };
  need(0, N * D, "h"); need(1, N * D, "x"); need(2, N * 3 * D, "qkv"); need(3, N * D, "att"); need(4, N * 2 * hid, "ab");
  need(5, N * hid, "g"); need(6, N * V, "logits"); need(10, hd / 2, "cos"); need(11, hd / 2, "sin"); need(12, D, "norm");
  need(13, V * D, "output");
  const std::vector<Block> blocks = read_blocks(info, "gptDecodeStep", layerArr, L, D, hid);
  std::vector<float*> kt(L), vc(L);
  for (int64_t l = 0; l < L; l++) {
    kt[l] = array_f32(info, "gptDecodeStep", kArr, (uint32_t)l, N * H * hd * ldk, "key cache");
    vc[l] = array_f32(info, "gptDecodeStep", vArr, (uint32_t)l, N * H * maxT * hd, "value cache");
  }
  const float scale = 1.0f / std::sqrt((float)hd);
  const int64_t attScratch = hd + (pos + 16) / 16 * 16;
  std::vector<float> scratch(2 * attScratch);
  Barrier2 barrier;
  // Rows are independent sequences, so each thread carries its half of the rows through every layer with no
  // meeting point (a barrier per phase cost more than it saved: 37 per step, and on a shared two-vCPU machine
  // each one waits out the other thread's hiccups). Only the head, whose weights are the large ones at
  // V = 4096, is split by output columns, after one barrier.
  auto work = [&](int t) {
    const auto [r0, r1] = part(N, t, 1);
    const auto [v0, v1] = part(V, t);
    for (int64_t l = 0; l < L; l++)
      block_rows(blocks[l], st, r0, r1, D, hid, eps, [&] {
        ctf::decode_attention_rows(qkv, kt[l], vc[l], cos, sin, att, r0, r1, H, hd, maxT, ldk, pos, scale,
                                   scratch.data() + t * attScratch);
      });
    rms_norm_rows(h, normW, x, r0, r1, D, eps);
    barrier.wait();
    linear_cols(x, N, D, outW, logits, V, v0, v1, 0.0f);
  };
  const int prev = openblas_get_num_threads();
  openblas_set_num_threads(1);
  std::thread helper(work, 1);
  work(0);
  helper.join();
  openblas_set_num_threads(prev);
  return info.Env().Undefined();
}

// The GPT's blocks and final norm over whole sequences, for inference (src/sample/hidden.ts: stage 2 reads the
// aux model's final states and multiplies them by only the head rows it samples from). Same arithmetic as the
// training-path ops without dropout; each of two threads takes half of the sequences through every block,
// with OpenBLAS single-threaded inside, so nothing waits on the other thread until the end.
// h (B·T, D) holds the input embeddings and becomes the residual stream; x (B·T, D), qkv (B·T, 3D),
// att (B·T, D), ab (B·T, 2·hid), g (B·T, hid) are scratch; out (B·T, D) receives rmsNorm(h).
// args: h, x, qkv, att, ab, g, out, layers (array of 6·L: attnNorm, wqkv, wo, ffnNorm, w13, w2 per layer),
//       cos, sin ((T, hd/2) RoPE tables, or both empty), norm (D), B, T, D, H, hid, causal, eps
CTF_KERNEL(gptHiddenForward) {
  const Stream st = read_stream(info);
  float *h = st.h, *qkv = st.qkv, *att = st.att;
  float* out = ctf::f32(info, 6, "out");
  if (!info[7].IsArray()) ctf::fail(info, "gptHiddenForward: layers must be an array");
  Napi::Array layerArr = info[7].As<Napi::Array>();
  const float* cos = ctf::len(info, 8) ? ctf::f32(info, 8, "cos") : nullptr;
  const float* sin = ctf::len(info, 9) ? ctf::f32(info, 9, "sin") : nullptr;
  const float* normW = ctf::f32(info, 10, "norm");
  const int64_t B = ctf::integer(info, 11, "B"), T = ctf::integer(info, 12, "T"), D = ctf::integer(info, 13, "D"),
                H = ctf::integer(info, 14, "H"), hid = ctf::integer(info, 15, "hid");
  const bool causal = info[16].ToBoolean();
  const float eps = (float)ctf::number(info, 17, "eps");
  const int64_t L = layerArr.Length() / 6, hd = D / H, N = B * T;
  if (B < 1 || T < 1 || H < 1 || D % H != 0 || hd % 2 != 0 || hid < 1) ctf::fail(info, "gptHiddenForward: inconsistent dimensions");
  auto need = [&](size_t i, int64_t n, const char* what) {
    if ((int64_t)ctf::len(info, i) < n) ctf::fail(info, std::string("gptHiddenForward: ") + what + " is smaller than its shape");
  };
  need(0, N * D, "h"); need(1, N * D, "x"); need(2, N * 3 * D, "qkv"); need(3, N * D, "att"); need(4, N * 2 * hid, "ab");
  need(5, N * hid, "g"); need(6, N * D, "out"); need(10, D, "norm");
  if ((cos == nullptr) != (sin == nullptr) || (cos && ((int64_t)ctf::len(info, 8) < T * hd / 2 || (int64_t)ctf::len(info, 9) < T * hd / 2)))
    ctf::fail(info, "gptHiddenForward: RoPE tables must both be (T, hd/2) or both empty");
  const std::vector<Block> blocks = read_blocks(info, "gptHiddenForward", layerArr, L, D, hid);
  const float scale = 1.0f / std::sqrt((float)hd);
  auto work = [&](int t) {
    const int64_t mid = (B + 1) / 2, b0 = t == 0 ? 0 : mid, b1 = t == 0 ? mid : B;
    const int64_t r0 = b0 * T, r1 = b1 * T;
    for (const Block& b : blocks)
      block_rows(b, st, r0, r1, D, hid, eps, [&] {
        ctf::rope_qkv_rows(qkv, cos, sin, r0, r1, T, H, hd, scale, false);
        ctf::attention_sequences(qkv, att, b0, b1, B, T, H, hd, causal);
      });
    rms_norm_rows(h, normW, out, r0, r1, D, eps);
  };
  const int prev = openblas_get_num_threads();
  openblas_set_num_threads(1);
  if (B >= 2) {
    std::thread helper(work, 1);
    work(0);
    helper.join();
  } else {
    work(0);  // one sequence: thread 0's half is all of it
  }
  openblas_set_num_threads(prev);
  return info.Env().Undefined();
}

// out = h + dropout(x): x's element i is dropped when uniform_at(seed, i) < p (the convention of the
// dropout kernel in elementwise.cc), kept ones are scaled by 1/(1-p); p = 0 is a plain sum.
// args: h, x, out, p, seed
CTF_KERNEL(addDropoutForward) {
  const float* h = ctf::f32(info, 0, "h");
  const float* x = ctf::f32(info, 1, "x");
  float* out = ctf::f32(info, 2, "out");
  const float p = (float)ctf::number(info, 3, "p");
  const uint32_t seed = (uint32_t)ctf::integer(info, 4, "seed");
  const int64_t n = (int64_t)ctf::len(info, 0);
  if ((int64_t)ctf::len(info, 1) != n || (int64_t)ctf::len(info, 2) != n) ctf::fail(info, "addDropoutForward: h, x, out differ in length");
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  split2(n, n, [&](int64_t i0, int64_t i1) {
    if (p == 0.0f) {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) out[i] = h[i] + x[i];
    } else {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) out[i] = h[i] + (ctf::uniform_at(seed, (uint64_t)i) < p ? 0.0f : x[i] * scale);
    }
  });
  return info.Env().Undefined();
}

// gx (+)= g · keep(i)/(1-p) with the forward's mask (regenerated from the seed, never stored).
// args: g, gx, p, seed, accumulate
CTF_KERNEL(addDropoutBackward) {
  const float* g = ctf::f32(info, 0, "g");
  float* gx = ctf::f32(info, 1, "gx");
  const float p = (float)ctf::number(info, 2, "p");
  const uint32_t seed = (uint32_t)ctf::integer(info, 3, "seed");
  const bool accumulate = info[4].ToBoolean();
  const int64_t n = (int64_t)ctf::len(info, 0);
  if ((int64_t)ctf::len(info, 1) != n) ctf::fail(info, "addDropoutBackward: g and gx differ in length");
  const float scale = p == 0.0f ? 1.0f : p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  split2(n, n, [&](int64_t i0, int64_t i1) {
    if (accumulate) {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) gx[i] += ctf::uniform_at(seed, (uint64_t)i) < p ? 0.0f : g[i] * scale;
    } else {
#pragma omp simd
      for (int64_t i = i0; i < i1; i++) gx[i] = ctf::uniform_at(seed, (uint64_t)i) < p ? 0.0f : g[i] * scale;
    }
  });
  return info.Env().Undefined();
}
