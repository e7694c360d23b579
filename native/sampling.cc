// Token sampling (temperature → top-k → top-p → multinomial, one row at a time) and nearest-codebook
// search (VQ, k-means) by ‖x‖² − 2 x·cᵀ + ‖c‖² with one sgemm per chunk of rows.
#include <cblas.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <thread>
#include <vector>
#include "common.h"
#include "vecmath.h"

namespace {

const double* f64(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    ctf::fail(info,
              std::string("native kernel: argument ") + std::to_string(i) + " (" + what + ") must be a Float64Array");
  return info[i].As<Napi::Float64Array>().Data();
}


// Sampling order: higher logit first, lower index first among equals (so every cut is deterministic).
struct Before {
  const float* l;
  bool operator()(int32_t a, int32_t b) const { return l[a] > l[b] || (l[a] == l[b] && a < b); }
};

struct SampleOptions {
  float inv_t;    // 1 / temperature
  int64_t top_k;  // 0 < top_k < V, or 0 = off
  double top_p;   // < 1, or 1 = off
};

// The k best tokens of l (V) in Before order into cand[0..k), unordered. Small k: one pass keeping a heap
// whose top is the worst kept token, so most tokens cost one comparison; large k: nth_element.
void top_k(const float* l, int64_t V, int64_t k, Before before, int32_t* cand) {
  if (k * 64 > V) {
    std::iota(cand, cand + V, 0);
    std::nth_element(cand, cand + (k - 1), cand + V, before);
    return;
  }
  std::iota(cand, cand + k, 0);
  std::make_heap(cand, cand + k, before);
  float worst = l[cand[0]];
  for (int64_t i = k; i < V; i++) {
    if (!(l[i] > worst)) continue;  // a tie loses: i is after every kept index
    std::pop_heap(cand, cand + k, before);
    cand[k - 1] = (int32_t)i;
    std::push_heap(cand, cand + k, before);
    worst = l[cand[0]];
  }
}

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

// One non-greedy row: l (V) with maximum mx at index best; e, cand (V) scratch. Returns the token.
int32_t sample_row(const float* l, int64_t V, float mx, int64_t best, const SampleOptions& o, double u, float* e,
                   int32_t* cand) {
  const Before before{l};
  int64_t n = V;  // candidates: cand[0..n), or every token while cand is unused
  bool all = true;
  double total = 0;
  if (o.top_k > 0) {
    top_k(l, V, o.top_k, before, cand);
    n = o.top_k;
    all = false;
    for (int64_t j = 0; j < n; j++) {
      const int32_t t = cand[j];
      e[t] = ctf::exp_vec((l[t] - mx) * o.inv_t);
      total += e[t];
    }
  } else {
#pragma omp simd reduction(+ : total)
    for (int64_t i = 0; i < V; i++) { e[i] = ctf::exp_vec((l[i] - mx) * o.inv_t); total += e[i]; }
  }
  if (o.top_p < 1) {
    // A token with e ≤ (1 − p)·total / n is never kept: everything ranked at or after it has mass ≤ n·e ≤
    // (1 − p)·total, so what precedes it already reaches p·total. Dropping those first is exact and leaves
    // the quickselect a small set; the survivors keep their order and prefix masses.
    const float floor = (float)((1 - o.top_p) * total / n);
    int64_t m = 0;
    if (all) { for (int64_t i = 0; i < V; i++) if (e[i] > floor) cand[m++] = (int32_t)i; }
    else { for (int64_t j = 0; j < n; j++) if (e[cand[j]] > floor) cand[m++] = cand[j]; }
    if (m == 0) cand[m++] = (int32_t)best;
    n = nucleus(cand, m, e, o.top_p * total, before);
    all = false;
  }
  // Draw over the kept tokens in ascending id order, so the token does not depend on how they were selected:
  // the first whose cumulative mass exceeds u·(kept mass); rounding past the end falls back to the last.
  int32_t tok = -1, last = (int32_t)best;
  if (all) {
    const double target = u * total;
    double acc = 0;
    for (int64_t i = 0; i < V; i++) {
      if (e[i] == 0) continue;
      last = (int32_t)i;
      acc += e[i];
      if (acc > target) { tok = (int32_t)i; break; }
    }
  } else {
    std::sort(cand, cand + n);
    double kept = 0;
    for (int64_t j = 0; j < n; j++) kept += e[cand[j]];
    const double target = u * kept;
    double acc = 0;
    for (int64_t j = 0; j < n; j++) {
      const int32_t t = cand[j];
      if (e[t] == 0) continue;
      last = t;
      acc += e[t];
      if (acc > target) { tok = t; break; }
    }
  }
  return tok < 0 ? last : tok;
}

// Largest logit of l (V) and its lowest index; bad = a NaN or +inf was seen.
void row_max(const float* l, int64_t V, float& mx, int64_t& best, bool& bad) {
  const float m = ctf::row_max(l, V);
  int finite = 1;
#pragma omp simd reduction(& : finite)
  for (int64_t i = 0; i < V; i++) finite &= l[i] < INFINITY;  // false for NaN and +inf
  mx = m;
  bad = !finite;
  best = 0;
  while (best < V - 1 && !(l[best] == m)) best++;
}

}  // namespace

// logits (N, V), uniforms (N) in [0, 1) -> tokens (N). Per row: temperature ≤ 0 or topK = 1 is argmax
// (lowest index among ties); otherwise p ∝ exp((l − max) / temperature), restricted to the topK
// highest logits (0 = all), then to the smallest set in that order whose probability reaches topP
// (renormalised over the top-k; ≥ 1 token), and token = first index (ascending) whose cumulative
// probability exceeds u·total. A row's token depends only on its logits and its own uniform; rows are
// split over two threads when there are enough of them.
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
  const SampleOptions o{greedy ? 0.0f : (float)(1.0 / temperature), topK < V ? topK : 0, topP};

  // Rows [r0, r1) with their own scratch; returns the first bad row (NaN/+inf/all −inf logits) or −1.
  auto rows = [&](int64_t r0, int64_t r1) -> int64_t {
    std::vector<float> e(greedy ? 0 : V);         // (V) unnormalised probabilities of the candidates
    std::vector<int32_t> cand(greedy ? 0 : V);    // (V) candidate token ids
    for (int64_t r = r0; r < r1; r++) {
      const float* l = logits + r * V;  // (V)
      float mx;
      int64_t best;
      bool bad;
      row_max(l, V, mx, best, bad);
      if (bad || mx == -INFINITY) return r;
      out[r] = greedy ? (int32_t)best : sample_row(l, V, mx, best, o, u[r], e.data(), cand.data());
    }
    return -1;
  };
  int64_t bad = -1;
  if (N >= 2 && N * V >= (1 << 18) && std::thread::hardware_concurrency() >= 2) {
    int64_t bad1 = -1;
    std::thread other([&] { bad1 = rows(N / 2, N); });
    bad = rows(0, N / 2);
    other.join();
    if (bad < 0) bad = bad1;
  } else {
    bad = rows(0, N);
  }
  if (bad >= 0)
    ctf::fail(info, "sampleLogits: row " + std::to_string(bad) + " has a NaN or +inf logit, or every logit at -inf");
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
