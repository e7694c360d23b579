// The GPT's inference passes over a bound handle (gpt_model.h): one KV-cached decoding step of every layer and
// the head (gptDecodeStep, src/models/kv-cache.ts), and the blocks plus final norm over whole sequences
// (gptHiddenForward, src/models/gpt-native.ts). Same arithmetic as the training path's ops without dropout; two
// threads, OpenBLAS single-threaded inside each.
#include <cblas.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <utility>
#include "gpt_model.h"
#include "vecmath.h"

namespace ctf {
// native/attention.cc: one decoding step's attention for rows n0 ≤ n < n1.
void decode_attention_rows(const float* qkv, float* kt, float* vc, const float* cos, const float* sin, float* out,
                           int64_t n0, int64_t n1, int64_t H, int64_t hd, int64_t maxT, int64_t ldk, int64_t pos,
                           float scale, float* scratch);
// native/attention.cc: attention of whole sequences b0 ≤ b < b1 of a rotated, scaled fused qkv.
void attention_sequences(const float* qkv, float* out, int64_t b0, int64_t b1, int64_t B, int64_t T, int64_t H,
                         int64_t hd, bool causal);
// native/rope.cc: ropeQkvInPlace on rows n0 ≤ n < n1.
void rope_qkv_rows(float* qkv, const float* cos, const float* sin, int64_t n0, int64_t n1, int64_t T, int64_t H,
                   int64_t hd, float scale, bool inverse);
}  // namespace ctf

namespace {

using ctf::exp_vec;  // vecmath.h
using ctf::GptBlock;
using ctf::GptModel;

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
inline void linear_cols(const float* A, int64_t M, int64_t K, const float* B, float* C, int64_t ldc, int64_t c0,
                        int64_t c1, float beta) {
  if (c1 <= c0 || M == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, c1 - c0, K, 1.0f, A, K, B + c0 * K, K, beta, C + c0, ldc);
}

// Rows r0 ≤ i < r1 of C (· × N) (= or, with beta 1, +=) A (· × K) · Bᵀ, B (N × K) a weight matrix: a linear
// layer over some of the rows.
inline void linear_rows(const float* A, int64_t r0, int64_t r1, int64_t K, const float* B, int64_t N, float* C,
                        float beta) {
  if (r1 <= r0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, N, K, 1.0f, A + r0 * K, K, B, K, beta, C + r0 * N, N);
}

// The residual stream h (rows, D) and the per-row scratch of a block: x (rows, D), qkv (rows, 3D), att (rows, D),
// ab (rows, 2·hid), g (rows, hid).
struct Stream {
  float *h, *x, *qkv, *att, *ab, *g;
};

// One pre-norm block on rows r0 ≤ i < r1 of the stream:
//   h += wo · attend(wqkv · rmsNorm(h));  h += w2 · (silu(w1 x) · w3 x), x = rmsNorm(h).
// attend() turns those rows of qkv into att.
template <class Attend>
void block_rows(const GptBlock& b, const Stream& st, int64_t r0, int64_t r1, int64_t D, int64_t hid, float eps,
                Attend attend) {
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

// Thread t's part [lo, hi) of n items; the split point is rounded to `align` so GEMM column blocks stay aligned.
inline std::pair<int64_t, int64_t> part(int64_t n, int t, int64_t align = 16) {
  int64_t mid = std::min(n, (n / 2 + align - 1) / align * align);
  return t == 0 ? std::pair<int64_t, int64_t>{0, mid} : std::pair<int64_t, int64_t>{mid, n};
}

// Runs work(0) here and work(1) on a helper thread with OpenBLAS single-threaded inside, or only work(0).
template <class Work>
void on_two_threads(bool two, Work work) {
  const int prev = openblas_get_num_threads();
  openblas_set_num_threads(1);
  if (two) {
    std::thread helper(work, 1);
    work(0);
    helper.join();
  } else {
    work(0);
  }
  openblas_set_num_threads(prev);
}

// An Int32Array argument of exactly n ids, each in [0, limit); the error names the first bad one as
// "what v at where(index) outside [0, limit)".
template <class Where>
const int32_t* ids_arg(const Napi::CallbackInfo& info, size_t i, const char* kernel, const char* what, int64_t n,
                       int64_t limit, Where where) {
  const int32_t* ids = ctf::i32(info, i, what);
  if ((int64_t)ctf::len(info, i) != n)
    ctf::fail(info, std::string(kernel) + ": " + std::to_string(ctf::len(info, i)) + " " + what + "s, expected " +
                        std::to_string(n));
  for (int64_t j = 0; j < n; j++)
    if (ids[j] < 0 || ids[j] >= limit)
      ctf::fail(info, std::string(kernel) + ": " + what + " " + std::to_string(ids[j]) + " at " + where(j) +
                          " outside [0, " + std::to_string(limit) + ")");
  return ids;
}

}  // namespace

// One KV-cached decoding step of every layer and the head, in one call on two threads: each takes half of the
// rows through every block, then both meet once and split the output head by columns, so each packs only half
// of its V rows. Position 0 reads class ids (the class token), later positions token ids.
// args: model, cache (of that model), pos (< maxT), ids (N) i32, logits (N, outVocab) f32 output
CTF_KERNEL(gptDecodeStep) {
  const GptModel& m = ctf::gpt_model_arg(info, 0, "gptDecodeStep");
  ctf::GptCache& c = ctf::gpt_cache_arg(info, 1, "gptDecodeStep");
  if (c.model != &m) ctf::fail(info, "gptDecodeStep: the KV cache was made for another GPT handle");
  const int64_t pos = ctf::integer(info, 2, "pos"), N = c.N, D = m.D, H = m.H, hd = m.hd, hid = m.hid, V = m.outVocab;
  if (pos < 0 || pos >= c.maxT)
    ctf::fail(info, "gptDecodeStep: position " + std::to_string(pos) + " outside the cache's [0, " +
                        std::to_string(c.maxT) + ")");
  const bool cls = pos == 0;
  const int32_t* ids = ids_arg(info, 3, "gptDecodeStep", cls ? "class" : "token", N, cls ? m.classRows : m.inVocab,
                               [](int64_t j) { return "row " + std::to_string(j); });
  float* logits = ctf::f32(info, 4, "logits");
  if ((int64_t)ctf::len(info, 4) != N * V)
    ctf::fail(info, "gptDecodeStep: logits hold " + std::to_string(ctf::len(info, 4)) + " values, expected (" +
                        std::to_string(N) + ", " + std::to_string(V) + ")");
  const float* table = cls ? m.cls : m.tok;
  for (int64_t n = 0; n < N; n++) std::copy(table + ids[n] * D, table + (ids[n] + 1) * D, c.h.data() + n * D);
  const Stream st{c.h.data(), c.x.data(), c.qkv.data(), c.att.data(), c.ab.data(), c.g.data()};
  const float* cos = m.cos + pos * (hd / 2);
  const float* sin = m.sin + pos * (hd / 2);
  const float scale = 1.0f / std::sqrt((float)hd);
  Barrier2 barrier;
  // Rows are independent sequences, so each thread carries its half of the rows through every layer with no
  // meeting point (a barrier per phase cost more than it saved: 37 per step, and on a shared two-vCPU machine
  // each one waits out the other thread's hiccups). Only the head, whose weights are the large ones at
  // V = 4096, is split by output columns, after one barrier.
  on_two_threads(true, [&](int t) {
    const auto [r0, r1] = part(N, t, 1);
    const auto [v0, v1] = part(V, t);
    float* scratch = c.attScratch.data() + t * (hd + c.ldk);
    for (int64_t l = 0; l < m.layers; l++)
      block_rows(m.blocks[l], st, r0, r1, D, hid, m.eps, [&] {
        ctf::decode_attention_rows(st.qkv, c.k[l].data(), c.v[l].data(), cos, sin, st.att, r0, r1, H, hd, c.maxT,
                                   c.ldk, pos, scale, scratch);
      });
    rms_norm_rows(st.h, m.norm, st.x, r0, r1, D, m.eps);
    barrier.wait();
    linear_cols(st.x, N, D, m.output, logits, V, v0, v1, 0.0f);
  });
  return info.Env().Undefined();
}

// The blocks and final norm over whole sequences at inference: classes (B), tokens (B, L) and, for a
// masked-refinement aux, fineInputs (B, L) (else null) -> out (B, 1 + L, D) = rmsNorm(h) at every position, h
// starting as [cls(class); tok(token) + fine(fine input)]. Each of two threads takes half of the sequences
// through every block, so nothing waits on the other thread until the end.
// args: model, classes i32, tokens i32, fineInputs i32 or null, out f32
CTF_KERNEL(gptHiddenForward) {
  GptModel& m = ctf::gpt_model_arg(info, 0, "gptHiddenForward");
  const char* k = "gptHiddenForward";
  ctf::i32(info, 1, "classes");
  ctf::i32(info, 2, "tokens");
  const int64_t B = (int64_t)ctf::len(info, 1);
  if (B < 1 || ctf::len(info, 2) % B != 0)
    ctf::fail(info, std::string(k) + ": " + std::to_string(ctf::len(info, 2)) + " tokens do not split into " +
                        std::to_string(B) + " rows");
  const int64_t L = (int64_t)ctf::len(info, 2) / B, T = L + 1, N = B * T, D = m.D, H = m.H, hd = m.hd, hid = m.hid;
  if (T > m.ropeRows)
    ctf::fail(info, std::string(k) + ": sequence of 1 + " + std::to_string(L) + " positions exceeds the RoPE table's " +
                        std::to_string(m.ropeRows));
  auto at = [L](int64_t j) { return "(" + std::to_string(j / L) + ", " + std::to_string(j % L) + ")"; };
  auto row = [](int64_t j) { return "row " + std::to_string(j); };
  const int32_t* classes = ids_arg(info, 1, k, "class", B, m.classRows, row);
  const int32_t* tokens = ids_arg(info, 2, k, "token", B * L, m.inVocab, at);
  const bool hasFine = !info[3].IsNull() && !info[3].IsUndefined();
  if (hasFine != (m.fineRows > 0))
    ctf::fail(info, std::string(k) + (hasFine ? ": fine inputs given to a model without a fine-token table"
                                              : ": a masked-refinement aux needs fine inputs"));
  const int32_t* fine = hasFine ? ids_arg(info, 3, k, "fine input", B * L, m.fineRows, at) : nullptr;
  float* out = ctf::f32(info, 4, "out");
  if ((int64_t)ctf::len(info, 4) != N * D)
    ctf::fail(info, std::string(k) + ": out holds " + std::to_string(ctf::len(info, 4)) + " values, expected (" +
                        std::to_string(B) + ", " + std::to_string(T) + ", " + std::to_string(D) + ")");
  const size_t need = (size_t)(N * (6 * D + 3 * hid));
  if (m.scratch.size() < need) {
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), 4 * (int64_t)(need - m.scratch.size()));
    m.scratch.resize(need);
  }
  float* s = m.scratch.data();
  const Stream st{s, s + N * D, s + 2 * N * D, s + 5 * N * D, s + 6 * N * D, s + N * (6 * D + 2 * hid)};
  const float scale = 1.0f / std::sqrt((float)hd);
  on_two_threads(B >= 2, [&](int t) {
    const int64_t mid = (B + 1) / 2, b0 = t == 0 ? 0 : mid, b1 = t == 0 ? mid : B;  // B = 1: thread 0 takes it all
    const int64_t r0 = b0 * T, r1 = b1 * T;
    for (int64_t b = b0; b < b1; b++) {
      float* h = st.h + b * T * D;
      std::copy(m.cls + classes[b] * D, m.cls + (classes[b] + 1) * D, h);
      for (int64_t i = 1; i < T; i++) {
        const float* e = m.tok + tokens[b * L + i - 1] * D;
        float* o = h + i * D;
        if (!fine) {
          std::copy(e, e + D, o);
          continue;
        }
        const float* f = m.fine + fine[b * L + i - 1] * D;
#pragma omp simd
        for (int64_t d = 0; d < D; d++) o[d] = e[d] + f[d];
      }
    }
    for (const GptBlock& blk : m.blocks)
      block_rows(blk, st, r0, r1, D, hid, m.eps, [&] {
        ctf::rope_qkv_rows(st.qkv, m.cos, m.sin, r0, r1, T, H, hd, scale, false);
        ctf::attention_sequences(st.qkv, st.att, b0, b1, B, T, H, hd, m.causal);
      });
    rms_norm_rows(st.h, m.norm, out, r0, r1, D, m.eps);
  });
  return info.Env().Undefined();
}
