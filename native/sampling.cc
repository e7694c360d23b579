// Token sampling (temperature → top-k → top-p → multinomial, one row at a time) and nearest-codebook
// search (VQ, k-means) by ‖x‖² − 2 x·cᵀ + ‖c‖² with one sgemm per chunk of rows.
#include <cblas.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>
#include "common.h"

namespace {

const double* f64(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    ctf::fail(info, std::string("native kernel: argument ") + std::to_string(i) + " (" + what + ") must be a Float64Array");
  return info[i].As<Napi::Float64Array>().Data();
}

// Sampling order: higher logit first, lower index first among equals (so every cut is deterministic).
struct Before {
  const float* l;
  bool operator()(int32_t a, int32_t b) const { return l[a] > l[b] || (l[a] == l[b] && a < b); }
};

// Among cand[0..n) (any order), moves the smallest prefix in sampling order whose mass Σ e reaches target
// to the front and returns its length (≥ 1). Expected O(n): quickselect on halves, keeping whole upper
// halves while their mass falls short, instead of sorting all n.
int64_t nucleus(int32_t* cand, int64_t n, const float* e, double target, Before before) {
  int64_t lo = 0, hi = n;
  double acc = 0;  // mass of cand[0..lo), all kept
  while (hi - lo > 32) {
    const int64_t mid = lo + (hi - lo) / 2;
    std::nth_element(cand + lo, cand + mid, cand + hi, before);
    double m = 0;
    for (int64_t j = lo; j < mid; j++) m += e[cand[j]];
    if (acc + m >= target) hi = mid;  // the cut lies in the upper half
    else { acc += m; lo = mid; }
  }
  std::sort(cand + lo, cand + hi, before);
  for (int64_t j = lo; j < hi; j++) {
    acc += e[cand[j]];
    if (acc >= target) return j + 1;
  }
  return std::max<int64_t>(hi, 1);  // rounding left the target unreached: keep what we have
}

}  // namespace

// logits (N, V), uniforms (N) in [0, 1) -> tokens (N). Per row: temperature ≤ 0 or topK = 1 is argmax
// (lowest index among ties); otherwise p ∝ exp((l − max) / temperature), restricted to the topK
// highest logits (0 = all), then to the smallest set in that order whose probability reaches topP
// (renormalised over the top-k; ≥ 1 token), and token = first index (ascending) whose cumulative
// probability exceeds u·total. A row's token depends only on its logits and its own uniform.
// args: logits, N, V, temperature, topK, topP, uniforms, out
CTF_KERNEL(sampleLogitsRows) {
  const float* logits = ctf::f32(info, 0, "logits");
  const int64_t N = ctf::integer(info, 1, "N"), V = ctf::integer(info, 2, "V");
  const double temperature = ctf::number(info, 3, "temperature");
  const int64_t topK = ctf::integer(info, 4, "topK");
  const double topP = ctf::number(info, 5, "topP");
  const double* u = f64(info, 6, "uniforms");
  int32_t* out = ctf::i32(info, 7, "out");
  if (N < 0 || V <= 0 || V > INT32_MAX || topK < 0) ctf::fail(info, "sampleLogitsRows: bad sizes");
  if ((int64_t)ctf::len(info, 0) != N * V || (int64_t)ctf::len(info, 6) != N || (int64_t)ctf::len(info, 7) != N)
    ctf::fail(info, "sampleLogitsRows: logits must hold N·V values, uniforms and out N");
  const bool greedy = temperature <= 0 || topK == 1;
  const bool use_k = topK > 0 && topK < V, use_p = topP < 1;
  const float inv_t = greedy ? 0.0f : (float)(1.0 / temperature);
  std::vector<float> e(greedy ? 0 : V);                  // (V) unnormalised probabilities of the candidates
  std::vector<int32_t> cand(greedy || !(use_k || use_p) ? 0 : V);  // (V) candidate token ids
  for (int64_t r = 0; r < N; r++) {
    const float* l = logits + r * V;  // (V)
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++) if (l[i] > l[best]) best = i;
    for (int64_t i = 0; i < V; i++)
      if (std::isnan(l[i]) || l[i] == INFINITY)
        ctf::fail(info, "sampleLogits: row " + std::to_string(r) + " has a NaN or +inf logit at token " + std::to_string(i));
    if (l[best] == -INFINITY) ctf::fail(info, "sampleLogits: row " + std::to_string(r) + " has every logit at -inf");
    if (greedy) { out[r] = (int32_t)best; continue; }
    const float mx = l[best];
    Before before{l};

    if (!use_k && !use_p) {  // plain multinomial over the whole row
      double total = 0;
      for (int64_t i = 0; i < V; i++) { e[i] = std::exp((l[i] - mx) * inv_t); total += e[i]; }
      const double target = u[r] * total;
      double acc = 0;
      int64_t tok = -1, last = best;
      for (int64_t i = 0; i < V; i++) {
        if (e[i] == 0) continue;
        last = i;
        acc += e[i];
        if (acc > target) { tok = i; break; }
      }
      out[r] = (int32_t)(tok < 0 ? last : tok);
      continue;
    }

    std::iota(cand.begin(), cand.end(), 0);
    int64_t n = V;
    if (use_k) {  // partial selection: the topK best in front, unordered
      std::nth_element(cand.begin(), cand.begin() + (topK - 1), cand.end(), before);
      n = topK;
    }
    double total = 0;
    for (int64_t j = 0; j < n; j++) { const int32_t t = cand[j]; e[t] = std::exp((l[t] - mx) * inv_t); total += e[t]; }
    if (use_p) n = nucleus(cand.data(), n, e.data(), topP * total, before);
    // Draw over the kept tokens in ascending id order, so the result does not depend on how they were selected.
    std::sort(cand.begin(), cand.begin() + n);
    double kept = 0;
    for (int64_t j = 0; j < n; j++) kept += e[cand[j]];
    const double target = u[r] * kept;
    double acc = 0;
    int32_t tok = -1, last = cand[0];
    for (int64_t j = 0; j < n; j++) {
      const int32_t t = cand[j];
      if (e[t] == 0) continue;
      last = t;
      acc += e[t];
      if (acc > target) { tok = t; break; }
    }
    out[r] = tok < 0 ? last : tok;
  }
  return info.Env().Undefined();
}

// x (N, D), codebook (V, D) -> index (N) = argmin_j ‖x_n − c_j‖² (lowest j among ties), dist (N) = that
// squared distance (clamped at 0 against cancellation). Rows go in chunks so the (chunk, V) buffer stays
// ≤ 4 MiB whatever N is.
// args: x, N, D, codebook, V, index, dist
CTF_KERNEL(nearestRows) {
  const float* x = ctf::f32(info, 0, "x");
  const int64_t N = ctf::integer(info, 1, "N"), D = ctf::integer(info, 2, "D");
  const float* cb = ctf::f32(info, 3, "codebook");
  const int64_t V = ctf::integer(info, 4, "V");
  int32_t* index = ctf::i32(info, 5, "index");
  float* dist = ctf::f32(info, 6, "dist");
  if (N < 0 || D <= 0 || V <= 0 || V > INT32_MAX) ctf::fail(info, "nearestRows: bad sizes");
  if ((int64_t)ctf::len(info, 0) != N * D || (int64_t)ctf::len(info, 3) != V * D || (int64_t)ctf::len(info, 5) != N ||
      (int64_t)ctf::len(info, 6) != N)
    ctf::fail(info, "nearestRows: buffer lengths do not match x (N, D), codebook (V, D), index (N), dist (N)");
  std::vector<float> cc(V);  // (V) ‖c_j‖²
  for (int64_t j = 0; j < V; j++) {
    double s = 0;
    for (int64_t k = 0; k < D; k++) s += (double)cb[j * D + k] * cb[j * D + k];
    cc[j] = (float)s;
  }
  const int64_t chunk = std::clamp<int64_t>((1 << 20) / V, 1, std::max<int64_t>(N, 1));
  std::vector<float> part(chunk * V);  // (chunk, V): ‖c_j‖² − 2 x_n·c_j
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t rows = std::min(chunk, N - n0);
    for (int64_t i = 0; i < rows; i++) std::copy(cc.begin(), cc.end(), part.begin() + i * V);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, V, D, -2.0f, x + n0 * D, D, cb, D, 1.0f, part.data(), V);
    for (int64_t i = 0; i < rows; i++) {
      const float* pr = part.data() + i * V;  // (V)
      int64_t best = 0;
      for (int64_t j = 1; j < V; j++) if (pr[j] < pr[best]) best = j;
      const float* xr = x + (n0 + i) * D;
      double xx = 0;
      for (int64_t k = 0; k < D; k++) xx += (double)xr[k] * xr[k];
      index[n0 + i] = (int32_t)best;
      dist[n0 + i] = std::max(0.0f, (float)(xx + pr[best]));
    }
  }
  return info.Env().Undefined();
}
