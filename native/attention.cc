// Scaled dot-product attention, forward and backward, one (batch, head) pair at a time, split over two
// threads. q, k, v and the output are strided views, so the GPT reads q/k/v straight out of its fused
// qkv projection (B, T, 3·D) and writes the output as (B, T, D) — no permutes. Optional 2D RoPE is
// applied to q and k on the fly (tables (T, hd/2)); the backward rotates dq, dk back.
// The kernel keeps the probabilities P (B, H, T, T) for the backward.
#include <cblas.h>
#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>
#include "common.h"

namespace {

// A (B, H, T, hd) view: element (b, h, t, d) is at p[b*sb + h*sh + t*st + d].
struct View {
  float* p;
  int64_t sb, sh, st;
  float* at(int64_t b, int64_t h) const { return p + b * sb + h * sh; }
};

struct Dims {
  int64_t B, H, T, hd;
};

// Runs fn(i) for i < n on the calling thread and one helper thread (contiguous halves).
template <class F>
void parallel2(int64_t n, F fn) {
  if (n < 2) {
    for (int64_t i = 0; i < n; i++) fn(i);
    return;
  }
  int64_t mid = n / 2;
  std::thread helper([&] { for (int64_t i = mid; i < n; i++) fn(i); });
  for (int64_t i = 0; i < mid; i++) fn(i);
  helper.join();
}

// dst (T, hd) contiguous = rope(src rows) with tables (T, hd/2); without tables a plain copy.
void gather_rotated(const float* src, int64_t st, int64_t T, int64_t hd, const float* cos, const float* sin, float* dst) {
  const int64_t half = hd / 2;
  for (int64_t t = 0; t < T; t++) {
    const float* x = src + t * st;
    float* y = dst + t * hd;
    if (!cos) {
      std::copy(x, x + hd, y);
      continue;
    }
    const float* c = cos + t * half;
    const float* s = sin + t * half;
#pragma omp simd
    for (int64_t j = 0; j < half; j++) {
      float x0 = x[2 * j], x1 = x[2 * j + 1];
      y[2 * j] = x0 * c[j] - x1 * s[j];
      y[2 * j + 1] = x1 * c[j] + x0 * s[j];
    }
  }
}

// dst rows += rope⁻¹(src (T, hd) contiguous): rotation by the negative angle (transpose of rope).
void scatter_unrotated(const float* src, int64_t T, int64_t hd, const float* cos, const float* sin, float* dst, int64_t st) {
  const int64_t half = hd / 2;
  for (int64_t t = 0; t < T; t++) {
    const float* g = src + t * hd;
    float* y = dst + t * st;
    if (!cos) {
#pragma omp simd
      for (int64_t d = 0; d < hd; d++) y[d] += g[d];
      continue;
    }
    const float* c = cos + t * half;
    const float* s = sin + t * half;
#pragma omp simd
    for (int64_t j = 0; j < half; j++) {
      float g0 = g[2 * j], g1 = g[2 * j + 1];
      y[2 * j] += g0 * c[j] + g1 * s[j];
      y[2 * j + 1] += g1 * c[j] - g0 * s[j];
    }
  }
}

// In place: S (T, T) scores -> probabilities, with causal masking and an optional additive mask.
// Masked entries become exactly 0; a fully masked row becomes all zeros (not NaN).
void softmax_rows(float* S, int64_t T, bool causal, const float* mask) {
  for (int64_t i = 0; i < T; i++) {
    float* s = S + i * T;
    int64_t n = causal ? i + 1 : T;
    if (mask) {
      const float* m = mask + i * T;
      for (int64_t j = 0; j < n; j++) s[j] += m[j];
    }
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) mx = std::max(mx, s[j]);
    if (mx == -INFINITY) {
      std::fill(s, s + T, 0.0f);
      continue;
    }
    float sum = 0;
    for (int64_t j = 0; j < n; j++) {
      float e = std::exp(s[j] - mx);
      s[j] = e;
      sum += e;
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < n; j++) s[j] *= inv;
    std::fill(s + n, s + T, 0.0f);
  }
}

struct Rope {
  const float* cos;  // (T, hd/2) or null
  const float* sin;
};

void forward_pair(const View& q, const View& k, const View& v, const View& out, float* P, const float* mask, bool causal,
                  const Rope& rope, const Dims& d, float scale, int64_t b, int64_t h, float* scratch) {
  const int64_t T = d.T, hd = d.hd;
  float* Qr = scratch;           // (T, hd)
  float* Kr = scratch + T * hd;  // (T, hd)
  gather_rotated(q.at(b, h), q.st, T, hd, rope.cos, rope.sin, Qr);
  gather_rotated(k.at(b, h), k.st, T, hd, rope.cos, rope.sin, Kr);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, Qr, hd, Kr, hd, 0.0f, P, T);
  softmax_rows(P, T, causal, mask);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, P, T, v.at(b, h), v.st, 0.0f, out.at(b, h), out.st);
}

void backward_pair(const View& q, const View& k, const View& v, const View& dout, const float* P, const View* dq,
                   const View* dk, const View* dv, const Rope& rope, const Dims& d, float scale, int64_t b, int64_t h,
                   float* scratch) {
  const int64_t T = d.T, hd = d.hd;
  float* Qr = scratch;                // (T, hd)
  float* Kr = Qr + T * hd;            // (T, hd)
  float* dR = Kr + T * hd;            // (T, hd) dQr then dKr
  float* dS = dR + T * hd;            // (T, T)
  const float* dO = dout.at(b, h);
  if (dv) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, P, T, dO, dout.st, 1.0f, dv->at(b, h), dv->st);
  if (!dq && !dk) return;
  // dP = dO Vᵀ; dS = P ∘ (dP − rowsum(P ∘ dP))
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dO, dout.st, v.at(b, h), v.st, 0.0f, dS, T);
  for (int64_t i = 0; i < T; i++) {
    const float* p = P + i * T;
    float* g = dS + i * T;
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < T; j++) dot += p[j] * g[j];
#pragma omp simd
    for (int64_t j = 0; j < T; j++) g[j] = p[j] * (g[j] - dot);
  }
  if (dq) {
    gather_rotated(k.at(b, h), k.st, T, hd, rope.cos, rope.sin, Kr);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, dS, T, Kr, hd, 0.0f, dR, hd);
    scatter_unrotated(dR, T, hd, rope.cos, rope.sin, dq->at(b, h), dq->st);
  }
  if (dk) {
    gather_rotated(q.at(b, h), q.st, T, hd, rope.cos, rope.sin, Qr);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, dS, T, Qr, hd, 0.0f, dR, hd);
    scatter_unrotated(dR, T, hd, rope.cos, rope.sin, dk->at(b, h), dk->st);
  }
}

// Checks that a (B, H, T, hd) view with these strides stays inside a buffer of n elements.
void check_view(const Napi::CallbackInfo& info, const char* what, size_t n, int64_t off, const View& v, const Dims& d) {
  int64_t last = off + (d.B - 1) * v.sb + (d.H - 1) * v.sh + (d.T - 1) * v.st + d.hd;
  if (off < 0 || v.sb < 0 || v.sh < 0 || v.st < d.hd || last > (int64_t)n)
    ctf::fail(info, std::string("attention: view of ") + what + " runs past the end of its buffer");
}

// Optional f32 argument: an empty Float32Array means "absent".
float* optional_f32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  float* p = ctf::f32(info, i, what);
  return ctf::len(info, i) == 0 ? nullptr : p;
}

}  // namespace

// Strided attention forward.
// args: q, offQ, k, offK, v, offV, sb, sh, st (shared strides of q/k/v),
//       out, offOut, osb, osh, ost, P (B,H,T,T), mask (T,T)·(B or 1) or empty, maskSb (0 or T·T),
//       cos, sin ((T, hd/2) or empty), B, H, T, hd, causal, scale
CTF_KERNEL(attentionForward) {
  Dims d{ctf::integer(info, 19, "B"), ctf::integer(info, 20, "H"), ctf::integer(info, 21, "T"), ctf::integer(info, 22, "hd")};
  bool causal = info[23].ToBoolean();
  float scale = (float)ctf::number(info, 24, "scale");
  int64_t sb = ctf::integer(info, 6, "sb"), sh = ctf::integer(info, 7, "sh"), st = ctf::integer(info, 8, "st");
  int64_t offQ = ctf::integer(info, 1, "offQ"), offK = ctf::integer(info, 3, "offK"), offV = ctf::integer(info, 5, "offV");
  View q{ctf::f32(info, 0, "q") + offQ, sb, sh, st}, k{ctf::f32(info, 2, "k") + offK, sb, sh, st},
      v{ctf::f32(info, 4, "v") + offV, sb, sh, st};
  int64_t offO = ctf::integer(info, 10, "offOut");
  View out{ctf::f32(info, 9, "out") + offO, ctf::integer(info, 11, "osb"), ctf::integer(info, 12, "osh"), ctf::integer(info, 13, "ost")};
  float* P = ctf::f32(info, 14, "P");
  const float* mask = optional_f32(info, 15, "mask");
  int64_t maskSb = ctf::integer(info, 16, "maskSb");
  Rope rope{optional_f32(info, 17, "cos"), optional_f32(info, 18, "sin")};
  if (d.B <= 0 || d.H <= 0 || d.T <= 0) return info.Env().Undefined();
  check_view(info, "q", ctf::len(info, 0), offQ, q, d);
  check_view(info, "k", ctf::len(info, 2), offK, k, d);
  check_view(info, "v", ctf::len(info, 4), offV, v, d);
  check_view(info, "out", ctf::len(info, 9), offO, out, d);
  if ((int64_t)ctf::len(info, 14) < d.B * d.H * d.T * d.T) ctf::fail(info, "attention: P buffer too small");
  if (mask && (int64_t)ctf::len(info, 15) < (d.B - 1) * maskSb + d.T * d.T) ctf::fail(info, "attention: mask buffer too small");
  if ((rope.cos == nullptr) != (rope.sin == nullptr) ||
      (rope.cos && ((int64_t)ctf::len(info, 17) < d.T * (d.hd / 2) || (int64_t)ctf::len(info, 18) < d.T * (d.hd / 2))))
    ctf::fail(info, "attention: rope tables must both be (T, hd/2)");
  parallel2(d.B * d.H, [&](int64_t i) {
    thread_local std::vector<float> scratch;
    scratch.resize(2 * d.T * d.hd);
    int64_t b = i / d.H, h = i % d.H;
    forward_pair(q, k, v, out, P + i * d.T * d.T, mask ? mask + b * maskSb : nullptr, causal, rope, d, scale, b, h,
                 scratch.data());
  });
  return info.Env().Undefined();
}

// Strided attention backward; adds into dq, dk, dv (same offsets and strides as q, k, v; an empty array
// skips that gradient).
// args: q, offQ, k, offK, v, offV, sb, sh, st, dout, offDout, osb, osh, ost, P, dq, dk, dv, cos, sin, B, H, T, hd, scale
CTF_KERNEL(attentionBackward) {
  Dims d{ctf::integer(info, 20, "B"), ctf::integer(info, 21, "H"), ctf::integer(info, 22, "T"), ctf::integer(info, 23, "hd")};
  float scale = (float)ctf::number(info, 24, "scale");
  int64_t sb = ctf::integer(info, 6, "sb"), sh = ctf::integer(info, 7, "sh"), st = ctf::integer(info, 8, "st");
  int64_t offQ = ctf::integer(info, 1, "offQ"), offK = ctf::integer(info, 3, "offK"), offV = ctf::integer(info, 5, "offV");
  View q{ctf::f32(info, 0, "q") + offQ, sb, sh, st}, k{ctf::f32(info, 2, "k") + offK, sb, sh, st},
      v{ctf::f32(info, 4, "v") + offV, sb, sh, st};
  int64_t offO = ctf::integer(info, 10, "offDout");
  View dout{ctf::f32(info, 9, "dout") + offO, ctf::integer(info, 11, "osb"), ctf::integer(info, 12, "osh"), ctf::integer(info, 13, "ost")};
  const float* P = ctf::f32(info, 14, "P");
  float* dqp = optional_f32(info, 15, "dq");
  float* dkp = optional_f32(info, 16, "dk");
  float* dvp = optional_f32(info, 17, "dv");
  Rope rope{optional_f32(info, 18, "cos"), optional_f32(info, 19, "sin")};
  if (d.B <= 0 || d.H <= 0 || d.T <= 0) return info.Env().Undefined();
  check_view(info, "q", ctf::len(info, 0), offQ, q, d);
  check_view(info, "k", ctf::len(info, 2), offK, k, d);
  check_view(info, "v", ctf::len(info, 4), offV, v, d);
  check_view(info, "dout", ctf::len(info, 9), offO, dout, d);
  if ((int64_t)ctf::len(info, 14) < d.B * d.H * d.T * d.T) ctf::fail(info, "attention: P buffer too small");
  View dq{dqp ? dqp + offQ : nullptr, sb, sh, st}, dk{dkp ? dkp + offK : nullptr, sb, sh, st}, dv{dvp ? dvp + offV : nullptr, sb, sh, st};
  if (dqp) check_view(info, "dq", ctf::len(info, 15), offQ, dq, d);
  if (dkp) check_view(info, "dk", ctf::len(info, 16), offK, dk, d);
  if (dvp) check_view(info, "dv", ctf::len(info, 17), offV, dv, d);
  if ((rope.cos == nullptr) != (rope.sin == nullptr) ||
      (rope.cos && ((int64_t)ctf::len(info, 18) < d.T * (d.hd / 2) || (int64_t)ctf::len(info, 19) < d.T * (d.hd / 2))))
    ctf::fail(info, "attention: rope tables must both be (T, hd/2)");
  parallel2(d.B * d.H, [&](int64_t i) {
    thread_local std::vector<float> scratch;
    scratch.resize(3 * d.T * d.hd + d.T * d.T);
    int64_t b = i / d.H, h = i % d.H;
    backward_pair(q, k, v, dout, P + i * d.T * d.T, dqp ? &dq : nullptr, dkp ? &dk : nullptr, dvp ? &dv : nullptr, rope, d,
                  scale, b, h, scratch.data());
  });
  return info.Env().Undefined();
}

// One decoding step for N sequences at the same position pos, against a KV cache.
// qkv (N, 3·H·hd) is this step's projection; q and k are rotated with the tables' row for pos
// (cos/sin (hd/2)), k and v are written into kc/vc (N, H, maxT, hd) at pos, and
// out (N, H·hd) = softmax(q·K[0..pos]ᵀ·scale) V[0..pos].
// args: qkv, kc, vc, cos, sin, out, N, H, hd, maxT, pos, scale
CTF_KERNEL(attentionDecode) {
  const float* qkv = ctf::f32(info, 0, "qkv");
  float* kc = ctf::f32(info, 1, "kCache");
  float* vc = ctf::f32(info, 2, "vCache");
  const float* cos = ctf::f32(info, 3, "cos");
  const float* sin = ctf::f32(info, 4, "sin");
  float* out = ctf::f32(info, 5, "out");
  int64_t N = ctf::integer(info, 6, "N"), H = ctf::integer(info, 7, "H"), hd = ctf::integer(info, 8, "hd"),
          maxT = ctf::integer(info, 9, "maxT"), pos = ctf::integer(info, 10, "pos");
  float scale = (float)ctf::number(info, 11, "scale");
  const int64_t D = H * hd, half = hd / 2;
  if (pos < 0 || pos >= maxT) ctf::fail(info, "attentionDecode: position outside the cache");
  if ((int64_t)ctf::len(info, 0) < N * 3 * D || (int64_t)ctf::len(info, 1) < N * H * maxT * hd ||
      (int64_t)ctf::len(info, 2) < N * H * maxT * hd || (int64_t)ctf::len(info, 3) < half || (int64_t)ctf::len(info, 4) < half ||
      (int64_t)ctf::len(info, 5) < N * D)
    ctf::fail(info, "attentionDecode: buffers smaller than their shapes");
  parallel2(N, [&](int64_t n) {
    thread_local std::vector<float> buf;
    buf.resize(hd + maxT);
    float* qr = buf.data();
    float* s = qr + hd;
    for (int64_t h = 0; h < H; h++) {
      const float* q = qkv + n * 3 * D + h * hd;
      const float* k = q + D;
      const float* v = q + 2 * D;
      float* K = kc + (n * H + h) * maxT * hd;
      float* V = vc + (n * H + h) * maxT * hd;
      float* kr = K + pos * hd;
      for (int64_t j = 0; j < half; j++) {
        float q0 = q[2 * j], q1 = q[2 * j + 1], k0 = k[2 * j], k1 = k[2 * j + 1];
        qr[2 * j] = (q0 * cos[j] - q1 * sin[j]) * scale;
        qr[2 * j + 1] = (q1 * cos[j] + q0 * sin[j]) * scale;
        kr[2 * j] = k0 * cos[j] - k1 * sin[j];
        kr[2 * j + 1] = k1 * cos[j] + k0 * sin[j];
      }
      std::copy(v, v + hd, V + pos * hd);
      float mx = -INFINITY;
      for (int64_t t = 0; t <= pos; t++) {
        const float* kt = K + t * hd;
        float acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t d = 0; d < hd; d++) acc += qr[d] * kt[d];
        s[t] = acc;
        mx = std::max(mx, acc);
      }
      float sum = 0;
      for (int64_t t = 0; t <= pos; t++) {
        s[t] = std::exp(s[t] - mx);
        sum += s[t];
      }
      float inv = 1.0f / sum;
      float* o = out + n * D + h * hd;
      std::fill(o, o + hd, 0.0f);
      for (int64_t t = 0; t <= pos; t++) {
        const float* vt = V + t * hd;
        float p = s[t] * inv;
#pragma omp simd
        for (int64_t d = 0; d < hd; d++) o[d] += p * vt[d];
      }
    }
  });
  return info.Env().Undefined();
}
