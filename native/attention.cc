// Scaled dot-product attention, forward and backward, one (batch, head) pair at a time, split over two
// threads. q, k, v and the output are strided views, so the GPT reads q/k/v straight out of its fused
// qkv projection (B, T, 3·D) and writes the output as (B, T, D) — no permutes. Optional 2D RoPE is
// applied to q and k on the fly (tables (T, hd/2)); the backward rotates dq, dk back.
// The forward keeps only each row's log-sum-exp (B, H, T); the backward recomputes the probabilities
// (cheaper here than writing (B, H, T, T) to memory and reading it back).
//
// The per-pair products are small (T×T×hd, e.g. 64×64×32), where a BLAS call costs more in overhead
// than in arithmetic; they run in a register-blocked micro-kernel below (4 rows × up to 64 columns of
// accumulators), and causal attention skips the blocks above the diagonal.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "common.h"
#include "parallel.h"
#include "vecmath.h"

namespace {

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), __may_alias__));

inline v16 load16(const float* p) { return *reinterpret_cast<const v16u*>(p); }
inline void store16(float* p, v16 v) { *reinterpret_cast<v16u*>(p) = v; }
inline int64_t round16(int64_t n) { return (n + 15) & ~int64_t(15); }

using ctf::exp_vec;  // vecmath.h

// C[r, 0:16·NV) (= or +=) Σ_{k0 ≤ k < k1} a(r, k) · B[k·ldb + 0:16·NV), for r < rows ≤ R, where
// a(r, k) = A[r·lda + k], or A[k·lda + r] with TRANS_A (A stored transposed: no transpose copies).
// The R×NV accumulators stay in registers (R·NV ≤ 16 of the 32 vector registers).
template <int NV, int R, bool TRANS_A>
inline void micro(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int rows, int64_t k0,
                  int64_t k1, bool accumulate) {
  const float* a[R];
  for (int r = 0; r < R; r++) a[r] = TRANS_A ? A + std::min(r, rows - 1) : A + std::min(r, rows - 1) * lda;
  v16 c[R][NV] = {};
  for (int64_t k = k0; k < k1; k++) {
    v16 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = load16(B + k * ldb + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      float x = TRANS_A ? a[r][k * lda] : a[r][k];
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) c[r][v] += x * b[v];
    }
  }
  for (int r = 0; r < rows; r++)
    for (int v = 0; v < NV; v++) {
      float* p = C + r * ldc + 16 * v;
      store16(p, accumulate ? load16(p) + c[r][v] : c[r][v]);
    }
}

// One row block (rows ≤ 8) times a column chunk of NV vectors: 8 rows at once for narrow chunks, two
// passes of 4 for wide ones (8×4 accumulators would not leave registers for the operands).
template <int NV, bool TRANS_A>
inline void micro_block(const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, int rows,
                        int64_t k0, int64_t k1, bool accumulate) {
  if (NV <= 2) {
    micro<NV, 8, TRANS_A>(A, lda, B, ldb, C, ldc, rows, k0, k1, accumulate);
    return;
  }
  micro<NV, 4, TRANS_A>(A, lda, B, ldb, C, ldc, std::min(rows, 4), k0, k1, accumulate);
  if (rows > 4)
    micro<NV, 4, TRANS_A>(TRANS_A ? A + 4 : A + 4 * lda, lda, B, ldb, C + 4 * ldc, ldc, rows - 4, k0, k1, accumulate);
}

// C (M × ·) (= or +=) op(A) · B over row blocks of 8, op(A) = A (M × ·, lda) or with TRANS_A Aᵀ
// (A stored (· × M)): block i0 uses k in krange(i0, rows) and the first cols(i0, rows) columns (a
// multiple of 16).
template <bool TRANS_A, class KRange, class Cols>
void gemm(int64_t M, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate,
          KRange krange, Cols cols) {
  for (int64_t i0 = 0; i0 < M; i0 += 8) {
    int rows = (int)std::min<int64_t>(8, M - i0);
    auto [k0, k1] = krange(i0, rows);
    int64_t n = cols(i0, rows), j = 0;
    const float* Ai = TRANS_A ? A + i0 : A + i0 * lda;
    float* Ci = C + i0 * ldc;
    for (; j + 64 <= n; j += 64) micro_block<4, TRANS_A>(Ai, lda, B + j, ldb, Ci + j, ldc, rows, k0, k1, accumulate);
    switch ((n - j) / 16) {
      case 3: micro_block<3, TRANS_A>(Ai, lda, B + j, ldb, Ci + j, ldc, rows, k0, k1, accumulate); break;
      case 2: micro_block<2, TRANS_A>(Ai, lda, B + j, ldb, Ci + j, ldc, rows, k0, k1, accumulate); break;
      case 1: micro_block<1, TRANS_A>(Ai, lda, B + j, ldb, Ci + j, ldc, rows, k0, k1, accumulate); break;
      default: break;
    }
  }
}

inline void copy_row(const float* src, int64_t n, float* dst) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}

inline void zero_row(float* dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dst[i] = 0.0f;
}

// A (B, H, T, hd) view: element (b, h, t, d) is at p[b*sb + h*sh + t*st + d].
struct View {
  float* p;
  int64_t sb, sh, st;
  int64_t h0 = 0;  // first head held (a unit's local copy starts at its first head)
  float* at(int64_t b, int64_t h) const { return p + b * sb + (h - h0) * sh; }
};

struct Dims {
  int64_t B, H, T, hd;
};

struct Rope {
  const float* cos;  // (T, hd/2) or null
  const float* sin;
};

// Runs fn(i, thread) for i < n on the calling thread and one helper thread (contiguous halves); on the caller
// alone when the process is limited to one thread.
template <class F>
void parallel2(int64_t n, F fn) {
  if (n < 2 || !ctf::two_threads()) {
    for (int64_t i = 0; i < n; i++) fn(i, 0);
    return;
  }
  int64_t mid = n / 2;
  std::thread helper([&] { for (int64_t i = mid; i < n; i++) fn(i, 1); });
  for (int64_t i = 0; i < mid; i++) fn(i, 0);
  helper.join();
}

// y[0:hd) = scale · rope(x) for one row, with that position's tables c, s (hd/2); no tables: scaled copy.
inline void rotate_row(const float* x, const float* c, const float* s, int64_t hd, float scale, float* y) {
  if (!c) {
#pragma omp simd
    for (int64_t d = 0; d < hd; d++) y[d] = scale * x[d];
    return;
  }
#pragma omp simd
  for (int64_t j = 0; j < hd / 2; j++) {
    float x0 = x[2 * j], x1 = x[2 * j + 1];
    y[2 * j] = scale * (x0 * c[j] - x1 * s[j]);
    y[2 * j + 1] = scale * (x1 * c[j] + x0 * s[j]);
  }
}

// Column col of dst (hd × ld) = rope(x) (building a transposed B operand row by row).
inline void rotate_col(const float* x, const float* c, const float* s, int64_t hd, float* dst, int64_t ld,
                       int64_t col) {
  if (!c) {
    for (int64_t d = 0; d < hd; d++) dst[d * ld + col] = x[d];
    return;
  }
  for (int64_t j = 0; j < hd / 2; j++) {
    float x0 = x[2 * j], x1 = x[2 * j + 1];
    dst[2 * j * ld + col] = x0 * c[j] - x1 * s[j];
    dst[(2 * j + 1) * ld + col] = x1 * c[j] + x0 * s[j];
  }
}

// dst (n × ldd) = transpose of src (m × n, row stride lds), in 16 × 16 tiles so both sides stay in a
// few cache lines per tile (the un-rotated keys and values as transposed B operands).
void transpose(const float* src, int64_t lds, int64_t m, int64_t n, float* dst, int64_t ldd) {
  for (int64_t i0 = 0; i0 < m; i0 += 16)
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
      const int64_t i1 = std::min(i0 + 16, m), j1 = std::min(j0 + 16, n);
      for (int64_t j = j0; j < j1; j++)
        for (int64_t i = i0; i < i1; i++) dst[j * ldd + i] = src[i * lds + j];
    }
}

// y[0:hd) (+)= scale · rope⁻¹(g): rotation by the negative angle (the transpose of rope).
template <bool ACCUMULATE>
inline void unrotate_row(const float* g, const float* c, const float* s, int64_t hd, float scale, float* y) {
  if (!c) {
#pragma omp simd
    for (int64_t d = 0; d < hd; d++) y[d] = (ACCUMULATE ? y[d] : 0.0f) + scale * g[d];
    return;
  }
#pragma omp simd
  for (int64_t j = 0; j < hd / 2; j++) {
    float g0 = g[2 * j], g1 = g[2 * j + 1];
    y[2 * j] = (ACCUMULATE ? y[2 * j] : 0.0f) + scale * (g0 * c[j] + g1 * s[j]);
    y[2 * j + 1] = (ACCUMULATE ? y[2 * j + 1] : 0.0f) + scale * (g1 * c[j] - g0 * s[j]);
  }
}

// A unit of work: batch element b, heads [h0, h1). Each unit gathers its rows once, in sequence order:
// in a fused qkv buffer consecutive positions are 3·D floats apart, and reading them one head at a time
// (a 128-byte strip per row) stalls on memory instead of streaming.
struct Unit {
  int64_t b, h0, h1;
};

std::vector<Unit> make_units(const Dims& d) {
  int64_t groups = d.B >= 4 ? 1 : std::min<int64_t>(d.H, 4);  // enough units for two threads
  std::vector<Unit> units;
  for (int64_t b = 0; b < d.B; b++)
    for (int64_t g = 0; g < groups; g++) units.push_back({b, d.H * g / groups, d.H * (g + 1) / groups});
  return units;
}

// Per-thread scratch for one unit of up to G heads; padding columns stay zero.
struct Scratch {
  int64_t T = 0, Tp = 0, hd = 0, hdp = 0, rows = 0, cols = 0;
  std::vector<float> buf;
  float* head[6];   // six blocks of (G × T × hdp): per head (T × hdp) rows
  float* colsT[2];  // two blocks of (G × hd × Tp): per head a transposed operand
  float* sq[2];     // (T × Tp) each
  float* local[4];  // four blocks of (T × G·hd): the unit's rows of q, k, v, dout, copied in sequence order
  int64_t G = 0;
  // Padding columns are never written, so the zero fill is needed only when the layout changes.
  void reset(const Dims& d, int64_t G_) {
    if (d.T == T && d.hd == hd && G_ == G) return;
    T = d.T, Tp = round16(d.T), hd = d.hd, hdp = round16(d.hd), G = G_;
    rows = T * hdp;
    cols = hd * Tp;
    buf.assign(6 * G * rows + 2 * G * cols + 2 * T * Tp + 4 * T * G * hd, 0.0f);
    float* p = buf.data();
    for (int i = 0; i < 6; i++) head[i] = p + i * G * rows;
    for (int i = 0; i < 2; i++) colsT[i] = p + 6 * G * rows + i * G * cols;
    for (int i = 0; i < 2; i++) sq[i] = p + 6 * G * rows + 2 * G * cols + i * T * Tp;
    for (int i = 0; i < 4; i++) local[i] = p + 6 * G * rows + 2 * G * cols + 2 * T * Tp + i * T * G * hd;
  }
};

// Scratch buffers outlive a call: fresh ones would be new pages (a page fault per 4 KiB) every call.
// A locked free list rather than statics, since worker threads share this addon.
class ScratchPool {
  std::mutex mu;
  std::vector<std::unique_ptr<Scratch>> free;

 public:
  std::unique_ptr<Scratch> take(const Dims& d, int64_t G) {
    std::unique_ptr<Scratch> s;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!free.empty()) {
        s = std::move(free.back());
        free.pop_back();
      }
    }
    if (!s) s = std::make_unique<Scratch>();
    s->reset(d, G);
    return s;
  }
  void give(std::unique_ptr<Scratch> s) {
    std::lock_guard<std::mutex> lock(mu);
    if (free.size() < 4) free.push_back(std::move(s));
  }
};
ScratchPool pool;

// Column count (multiple of 16) needed by the rows of a block: causal rows i0..i0+rows-1 see keys ≤ their index.
struct CausalCols {
  bool causal; int64_t T, Tp;
  int64_t operator()(int64_t i0, int rows) const { return causal ? round16(std::min(i0 + rows, T)) : Tp; }
};
struct PrefixK {  // k < i0 + rows (causal: P and dS rows are zero beyond the diagonal)
  bool causal; int64_t T;
  std::pair<int64_t, int64_t> operator()(int64_t i0, int rows) const {
    return {0, causal ? std::min(i0 + rows, T) : T};
  }
};
struct SuffixK {  // k ≥ i0 (causal: transposed P and dS rows are zero before the diagonal)
  bool causal; int64_t T;
  std::pair<int64_t, int64_t> operator()(int64_t i0, int) const { return {causal ? i0 : 0, T}; }
};
struct AllK {
  int64_t K;
  std::pair<int64_t, int64_t> operator()(int64_t, int) const { return {0, K}; }
};
struct FixedCols {
  int64_t n;
  int64_t operator()(int64_t, int) const { return n; }
};

struct Rows {  // the RoPE tables' row for position t (null without RoPE)
  const Rope& r; int64_t half;
  const float* c(int64_t t) const { return r.cos ? r.cos + t * half : nullptr; }
  const float* s(int64_t t) const { return r.sin ? r.sin + t * half : nullptr; }
};

// Row i of a score matrix sees keys j < n(i) (i + 1 when causal, else T). The row loops below run to n
// rounded up to 16 (scores and probabilities have ld ≥ that, a multiple of 16) so they vectorise without
// scalar remainders; the padding is −∞ in the scores and 0 in the probabilities.

// In place over S rows (ld): P (T × ld) = softmax(S (+ mask (T × T))), lse (T) = log Σ exp of each row
// (−∞ if fully masked). Masked and padding entries of P are exactly 0; a fully masked row is all zeros.
void softmax_forward(float* S, int64_t ld, int64_t T, bool causal, const float* mask, float* P, float* lse) {
  for (int64_t i = 0; i < T; i++) {
    float* s = S + i * ld;
    float* p = P + i * ld;
    const int64_t n = causal ? i + 1 : T, n16 = round16(n);
    if (mask) {
      const float* m = mask + i * T;
#pragma omp simd
      for (int64_t j = 0; j < n; j++) s[j] += m[j];
    }
    for (int64_t j = n; j < n16; j++) s[j] = -INFINITY;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < n16; j++) mx = std::max(mx, s[j]);
    zero_row(p + n16, ld - n16);
    if (mx == -INFINITY) {
      zero_row(p, n16);
      lse[i] = -INFINITY;
      continue;
    }
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n16; j++) {
      float e = exp_vec(s[j] - mx);
      p[j] = e;
      sum += e;
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t j = 0; j < n16; j++) p[j] *= inv;
    lse[i] = mx + std::log(sum);
  }
}

// The backward's P (T × ld) = exp(S (+ mask) − lse) from the forward's row log-sum-exps; S rows are
// modified (mask added, padding set to −∞).
void softmax_recompute(float* S, int64_t ld, int64_t T, bool causal, const float* mask, const float* lse, float* P) {
  for (int64_t i = 0; i < T; i++) {
    float* s = S + i * ld;
    float* p = P + i * ld;
    const int64_t n = causal ? i + 1 : T, n16 = round16(n);
    const float l = lse[i];
    zero_row(p + n16, ld - n16);
    if (l == -INFINITY) {
      zero_row(p, n16);
      continue;
    }
    if (mask) {
      const float* m = mask + i * T;
#pragma omp simd
      for (int64_t j = 0; j < n; j++) s[j] += m[j];
    }
    for (int64_t j = n; j < n16; j++) s[j] = -INFINITY;
#pragma omp simd
    for (int64_t j = 0; j < n16; j++) p[j] = exp_vec(s[j] - l);
  }
}

// Where a per-head operand lives: a row view of q/k/v/out itself when its rows can feed the micro-kernel
// as they are (head dim a multiple of 16, nothing to rotate or scale), else a scratch copy (ld hdp).
// In place is what attentionBlock uses (it rotates and scales q, k once, in its own qkv buffer).
struct Operand {
  float* p;
  int64_t ld;
};

struct Plan {
  bool vec;     // hd % 16 == 0: rows of the views can be micro-kernel operands and targets in place
  bool plainQ;  // ... and q needs neither rotation nor scaling
  bool plainK;  // ... and k needs no rotation
  Plan(const Rope& rope, const Dims& d, float scale)
      : vec(d.hd % 16 == 0), plainQ(vec && !rope.cos && scale == 1.0f), plainK(vec && !rope.cos) {}
};

// The unit's rows of a view whose heads sit side by side in each row (a fused qkv buffer: rows 3·D floats
// apart), copied row by row into dst (T × G·hd): one sequential pass the prefetchers follow, after which
// every per-head access hits cache. Views already compact per head are returned as they are.
View localize(const View& x, const Unit& u, const Dims& d, float* dst) {
  const int64_t G = u.h1 - u.h0, w = G * d.hd;
  if (x.sh != d.hd || x.st == w) return x;
  for (int64_t t = 0; t < d.T; t++) copy_row(x.at(u.b, u.h0) + t * x.st, w, dst + t * w);
  View local{dst, 0, d.hd, w};
  local.h0 = u.h0;
  return local;
}

// lse holds (B, H, T); mask is this batch element's (T × T) or null.
void forward_unit(const View& q_, const View& k_, const View& v_, const View& out, float* lse, const float* mask,
                  bool causal, const Rope& rope, const Dims& d, float scale, const Unit& u, Scratch& s) {
  const int64_t T = d.T, hd = d.hd, Tp = s.Tp, hdp = s.hdp, G = u.h1 - u.h0, b = u.b;
  const View q = localize(q_, u, d, s.local[0]), k = localize(k_, u, d, s.local[1]), v = localize(v_, u, d, s.local[2]);
  const Plan plan(rope, d, scale);
  const Rows tab{rope, hd / 2};
  float* Qs = s.head[0];   // per head: scale · rope(q) (T × hdp), unless read in place
  float* Vp = s.head[1];   // per head: v              (T × hdp), unless read in place
  float* O = s.head[2];    // per head: P · v          (T × hdp), unless written in place
  float* Kt = s.colsT[0];  // per head: rope(k)ᵀ       (hd × Tp)
  float* S = s.sq[0];      // scores                   (T × Tp)
  float* P = s.sq[1];      // probabilities            (T × Tp)
  for (int64_t t = 0; t < T; t++)  // gathers in sequence order: one pass over each row of the views
    for (int64_t g = 0; g < G; g++) {
      const int64_t h = u.h0 + g;
      if (!plan.plainQ) rotate_row(q.at(b, h) + t * q.st, tab.c(t), tab.s(t), hd, scale, Qs + g * s.rows + t * hdp);
      if (rope.cos) rotate_col(k.at(b, h) + t * k.st, tab.c(t), tab.s(t), hd, Kt + g * s.cols, Tp, t);
      if (!plan.vec) copy_row(v.at(b, h) + t * v.st, hd, Vp + g * s.rows + t * hdp);
    }
  if (!rope.cos)
    for (int64_t g = 0; g < G; g++) transpose(k.at(b, u.h0 + g), k.st, T, hd, Kt + g * s.cols, Tp);
  for (int64_t g = 0; g < G; g++) {
    const int64_t h = u.h0 + g;
    const Operand Q = plan.plainQ ? Operand{q.at(b, h), q.st} : Operand{Qs + g * s.rows, hdp};
    const Operand Vo = plan.vec ? Operand{v.at(b, h), v.st} : Operand{Vp + g * s.rows, hdp};
    const Operand Oo = plan.vec ? Operand{out.at(b, h), out.st} : Operand{O + g * s.rows, hdp};
    gemm<false>(T, Q.p, Q.ld, Kt + g * s.cols, Tp, S, Tp, false, AllK{hd}, CausalCols{causal, T, Tp});
    softmax_forward(S, Tp, T, causal, mask, P, lse + (b * d.H + h) * T);
    gemm<false>(T, P, Tp, Vo.p, Vo.ld, Oo.p, Oo.ld, false, PrefixK{causal, T}, FixedCols{hdp});
  }
  if (!plan.vec)
    for (int64_t t = 0; t < T; t++)
      for (int64_t g = 0; g < G; g++) copy_row(O + g * s.rows + t * hdp, hd, out.at(b, u.h0 + g) + t * out.st);
}

// Recomputes P per head from q, k and the saved lse (cheaper than storing (B, H, T, T) and reading it back).
// accumulate: add into dq, dk, dv (else overwrite them: every element of the unit's heads is written).
void backward_unit(const View& q_, const View& k_, const View& v_, const View& dout_, const float* lse,
                   const float* mask, const View* dq, const View* dk, const View* dv, bool causal, const Rope& rope,
                   const Dims& d, float scale, const Unit& u, Scratch& s, bool accumulate) {
  const int64_t T = d.T, hd = d.hd, Tp = s.Tp, hdp = s.hdp, G = u.h1 - u.h0, b = u.b;
  const View q = localize(q_, u, d, s.local[0]), k = localize(k_, u, d, s.local[1]), v = localize(v_, u, d, s.local[2]);
  const View dout = localize(dout_, u, d, s.local[3]);
  const Plan plan(rope, d, scale);
  const Rows tab{rope, hd / 2};
  // In place, the gradients of q and k are the products themselves (no rotation back, no scale).
  const bool directQ = plan.plainQ, directK = plan.plainK, directV = plan.vec;
  float* dO = s.head[0];   // per head: dout                 (T × hdp), unless read in place
  float* Qs = s.head[1];   // per head: scale · rope(q)      (T × hdp), unless read in place
  float* Kr = s.head[2];   // per head: rope(k)              (T × hdp), unless read in place
  float* RdQ = s.head[3];  // per head: dS · rope(k)         (T × hdp), unless written in place
  float* RdK = s.head[4];  // per head: dSᵀ · scale·rope(q)  (T × hdp), unless written in place
  float* RdV = s.head[5];  // per head: Pᵀ · dout            (T × hdp), unless written in place
  float* Kt = s.colsT[0];  // per head: rope(k)ᵀ             (hd × Tp)
  float* Vt = s.colsT[1];  // per head: vᵀ                   (hd × Tp)
  float* dS = s.sq[0];     // S, then dP, then dS            (T × Tp)
  float* P = s.sq[1];      // probabilities                  (T × Tp)
  for (int64_t t = 0; t < T; t++)
    for (int64_t g = 0; g < G; g++) {
      const int64_t h = u.h0 + g;
      if (!plan.plainQ) rotate_row(q.at(b, h) + t * q.st, tab.c(t), tab.s(t), hd, scale, Qs + g * s.rows + t * hdp);
      if (rope.cos) rotate_col(k.at(b, h) + t * k.st, tab.c(t), tab.s(t), hd, Kt + g * s.cols, Tp, t);
      if (dq && !plan.plainK)
        rotate_row(k.at(b, h) + t * k.st, tab.c(t), tab.s(t), hd, 1.0f, Kr + g * s.rows + t * hdp);
      if (!plan.vec) copy_row(dout.at(b, h) + t * dout.st, hd, dO + g * s.rows + t * hdp);
    }
  for (int64_t g = 0; g < G; g++) {
    if (!rope.cos) transpose(k.at(b, u.h0 + g), k.st, T, hd, Kt + g * s.cols, Tp);
    if (dq || dk) transpose(v.at(b, u.h0 + g), v.st, T, hd, Vt + g * s.cols, Tp);
  }
  for (int64_t g = 0; g < G; g++) {
    const int64_t h = u.h0 + g, r = g * s.rows;
    const Operand Q = plan.plainQ ? Operand{q.at(b, h), q.st} : Operand{Qs + r, hdp};
    const Operand K = plan.plainK ? Operand{k.at(b, h), k.st} : Operand{Kr + r, hdp};
    const Operand G_ = plan.vec ? Operand{dout.at(b, h), dout.st} : Operand{dO + r, hdp};
    gemm<false>(T, Q.p, Q.ld, Kt + g * s.cols, Tp, dS, Tp, false, AllK{hd}, CausalCols{causal, T, Tp});
    softmax_recompute(dS, Tp, T, causal, mask, lse + (b * d.H + h) * T, P);
    if (dv) {
      const Operand R = directV ? Operand{dv->at(b, h), dv->st} : Operand{RdV + r, hdp};
      gemm<true>(T, P, Tp, G_.p, G_.ld, R.p, R.ld, directV && accumulate, SuffixK{causal, T}, FixedCols{hdp});
    }
    if (!dq && !dk) continue;
    // dP = dO Vᵀ; dS = P ∘ (dP − rowsum(P ∘ dP)), zero beyond each row's last key.
    gemm<false>(T, G_.p, G_.ld, Vt + g * s.cols, Tp, dS, Tp, false, AllK{hd}, CausalCols{causal, T, Tp});
    for (int64_t i = 0; i < T; i++) {
      const float* p = P + i * Tp;  // zero from n(i) on
      float* gr = dS + i * Tp;
      const int64_t n16 = round16(causal ? i + 1 : T);
      float dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < n16; j++) dot += p[j] * gr[j];
#pragma omp simd
      for (int64_t j = 0; j < n16; j++) gr[j] = p[j] * (gr[j] - dot);
      zero_row(gr + n16, Tp - n16);
    }
    if (dq) {
      const Operand R = directQ ? Operand{dq->at(b, h), dq->st} : Operand{RdQ + r, hdp};
      gemm<false>(T, dS, Tp, K.p, K.ld, R.p, R.ld, directQ && accumulate, PrefixK{causal, T}, FixedCols{hdp});
    }
    if (dk) {
      const Operand R = directK ? Operand{dk->at(b, h), dk->st} : Operand{RdK + r, hdp};
      gemm<true>(T, dS, Tp, Q.p, Q.ld, R.p, R.ld, directK && accumulate, SuffixK{causal, T}, FixedCols{hdp});
    }
  }
  auto scatter = [&](auto accumulate) {
    constexpr bool ACC = decltype(accumulate)::value;
    for (int64_t t = 0; t < T; t++)
      for (int64_t g = 0; g < G; g++) {
        int64_t h = u.h0 + g, r = g * s.rows + t * hdp;
        if (dq && !directQ) unrotate_row<ACC>(RdQ + r, tab.c(t), tab.s(t), hd, scale, dq->at(b, h) + t * dq->st);
        if (dk && !directK) unrotate_row<ACC>(RdK + r, tab.c(t), tab.s(t), hd, 1.0f, dk->at(b, h) + t * dk->st);
        if (dv && !directV) unrotate_row<ACC>(RdV + r, nullptr, nullptr, hd, 1.0f, dv->at(b, h) + t * dv->st);
      }
  };
  if (accumulate) scatter(std::true_type{});
  else scatter(std::false_type{});
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

void check_rope(const Napi::CallbackInfo& info, const Rope& rope, size_t i, const Dims& d) {
  if ((rope.cos == nullptr) != (rope.sin == nullptr) ||
      (rope.cos &&
       ((int64_t)ctf::len(info, i) < d.T * (d.hd / 2) || (int64_t)ctf::len(info, i + 1) < d.T * (d.hd / 2))))
    ctf::fail(info, "attention: rope tables must both be (T, hd/2)");
  if (d.hd % 2 != 0) ctf::fail(info, "attention: head dim must be even");
}

}  // namespace

// Strided attention forward.
// args: q, offQ, k, offK, v, offV, sb, sh, st (shared strides of q/k/v),
//       out, offOut, osb, osh, ost, lse (B,H,T) written for the backward, mask (T,T)·(B or 1) or empty,
//       maskSb (0 or T·T), cos, sin ((T, hd/2) or empty), B, H, T, hd, causal, scale
CTF_KERNEL(attentionForward) {
  Dims d{ctf::integer(info, 19, "B"), ctf::integer(info, 20, "H"), ctf::integer(info, 21, "T"),
         ctf::integer(info, 22, "hd")};
  bool causal = info[23].ToBoolean();
  float scale = (float)ctf::number(info, 24, "scale");
  int64_t sb = ctf::integer(info, 6, "sb"), sh = ctf::integer(info, 7, "sh"), st = ctf::integer(info, 8, "st");
  int64_t offQ = ctf::integer(info, 1, "offQ"), offK = ctf::integer(info, 3, "offK"),
          offV = ctf::integer(info, 5, "offV");
  View q{ctf::f32(info, 0, "q") + offQ, sb, sh, st}, k{ctf::f32(info, 2, "k") + offK, sb, sh, st},
      v{ctf::f32(info, 4, "v") + offV, sb, sh, st};
  int64_t offO = ctf::integer(info, 10, "offOut");
  View out{ctf::f32(info, 9, "out") + offO, ctf::integer(info, 11, "osb"), ctf::integer(info, 12, "osh"),
           ctf::integer(info, 13, "ost")};
  float* lse = ctf::f32(info, 14, "lse");
  const float* mask = optional_f32(info, 15, "mask");
  int64_t maskSb = ctf::integer(info, 16, "maskSb");
  Rope rope{optional_f32(info, 17, "cos"), optional_f32(info, 18, "sin")};
  if (d.B <= 0 || d.H <= 0 || d.T <= 0 || d.hd <= 0) return info.Env().Undefined();
  check_view(info, "q", ctf::len(info, 0), offQ, q, d);
  check_view(info, "k", ctf::len(info, 2), offK, k, d);
  check_view(info, "v", ctf::len(info, 4), offV, v, d);
  check_view(info, "out", ctf::len(info, 9), offO, out, d);
  check_rope(info, rope, 17, d);
  if ((int64_t)ctf::len(info, 14) < d.B * d.H * d.T) ctf::fail(info, "attention: lse buffer smaller than (B, H, T)");
  if (mask && (maskSb < 0 || (int64_t)ctf::len(info, 15) < (d.B - 1) * maskSb + d.T * d.T))
    ctf::fail(info, "attention: mask buffer too small");
  std::vector<Unit> units = make_units(d);
  int64_t G = 0;
  for (const Unit& u : units) G = std::max(G, u.h1 - u.h0);
  std::unique_ptr<Scratch> s0 = pool.take(d, G), s1 = pool.take(d, G);
  parallel2((int64_t)units.size(), [&](int64_t i, int t) {
    const Unit& u = units[i];
    forward_unit(q, k, v, out, lse, mask ? mask + u.b * maskSb : nullptr, causal, rope, d, scale, u,
                 t == 0 ? *s0 : *s1);
  });
  pool.give(std::move(s0));
  pool.give(std::move(s1));
  return info.Env().Undefined();
}

// Strided attention backward; adds into dq, dk, dv (same offsets and strides as q, k, v; an empty array
// skips that gradient), or with accumulate = false overwrites them (scratch that need not be zeroed).
// Recomputes the probabilities from q, k, the mask and the forward's lse.
// args: q, offQ, k, offK, v, offV, sb, sh, st, dout, offDout, osb, osh, ost, lse, mask, maskSb, dq, dk, dv,
//       cos, sin, B, H, T, hd, scale, causal, accumulate
CTF_KERNEL(attentionBackward) {
  Dims d{ctf::integer(info, 22, "B"), ctf::integer(info, 23, "H"), ctf::integer(info, 24, "T"),
         ctf::integer(info, 25, "hd")};
  float scale = (float)ctf::number(info, 26, "scale");
  bool causal = info[27].ToBoolean(), accumulate = info[28].ToBoolean();
  int64_t sb = ctf::integer(info, 6, "sb"), sh = ctf::integer(info, 7, "sh"), st = ctf::integer(info, 8, "st");
  int64_t offQ = ctf::integer(info, 1, "offQ"), offK = ctf::integer(info, 3, "offK"),
          offV = ctf::integer(info, 5, "offV");
  View q{ctf::f32(info, 0, "q") + offQ, sb, sh, st}, k{ctf::f32(info, 2, "k") + offK, sb, sh, st},
      v{ctf::f32(info, 4, "v") + offV, sb, sh, st};
  int64_t offO = ctf::integer(info, 10, "offDout");
  View dout{ctf::f32(info, 9, "dout") + offO, ctf::integer(info, 11, "osb"), ctf::integer(info, 12, "osh"),
            ctf::integer(info, 13, "ost")};
  const float* lse = ctf::f32(info, 14, "lse");
  const float* mask = optional_f32(info, 15, "mask");
  int64_t maskSb = ctf::integer(info, 16, "maskSb");
  float* dqp = optional_f32(info, 17, "dq");
  float* dkp = optional_f32(info, 18, "dk");
  float* dvp = optional_f32(info, 19, "dv");
  Rope rope{optional_f32(info, 20, "cos"), optional_f32(info, 21, "sin")};
  if (d.B <= 0 || d.H <= 0 || d.T <= 0 || d.hd <= 0) return info.Env().Undefined();
  check_view(info, "q", ctf::len(info, 0), offQ, q, d);
  check_view(info, "k", ctf::len(info, 2), offK, k, d);
  check_view(info, "v", ctf::len(info, 4), offV, v, d);
  check_view(info, "dout", ctf::len(info, 9), offO, dout, d);
  check_rope(info, rope, 20, d);
  if ((int64_t)ctf::len(info, 14) < d.B * d.H * d.T) ctf::fail(info, "attention: lse buffer smaller than (B, H, T)");
  if (mask && (maskSb < 0 || (int64_t)ctf::len(info, 15) < (d.B - 1) * maskSb + d.T * d.T))
    ctf::fail(info, "attention: mask buffer too small");
  View dq{dqp ? dqp + offQ : nullptr, sb, sh, st}, dk{dkp ? dkp + offK : nullptr, sb, sh, st},
      dv{dvp ? dvp + offV : nullptr, sb, sh, st};
  if (dqp) check_view(info, "dq", ctf::len(info, 17), offQ, dq, d);
  if (dkp) check_view(info, "dk", ctf::len(info, 18), offK, dk, d);
  if (dvp) check_view(info, "dv", ctf::len(info, 19), offV, dv, d);
  std::vector<Unit> units = make_units(d);
  int64_t G = 0;
  for (const Unit& u : units) G = std::max(G, u.h1 - u.h0);
  std::unique_ptr<Scratch> s0 = pool.take(d, G), s1 = pool.take(d, G);
  parallel2((int64_t)units.size(), [&](int64_t i, int t) {
    const Unit& u = units[i];
    backward_unit(q, k, v, dout, lse, mask ? mask + u.b * maskSb : nullptr, dqp ? &dq : nullptr, dkp ? &dk : nullptr,
                  dvp ? &dv : nullptr, causal, rope, d, scale, u, t == 0 ? *s0 : *s1, accumulate);
  });
  pool.give(std::move(s0));
  pool.give(std::move(s1));
  return info.Env().Undefined();
}

// One decoding step for N sequences at the same position pos, against a KV cache.
// qkv (N, 3·H·hd) is this step's projection. q and k are rotated with the tables' row for pos (cos/sin
// (hd/2)); k is written into the transposed key cache kt (N, H, hd, ldk) at column pos, v into the value
// cache vc (N, H, maxT, hd) at row pos; out (N, H·hd) = softmax(q·K[0..pos]ᵀ·scale) V[0..pos].
// Keys are stored transposed so a query's scores against 16 cached keys are one 16-wide FMA per dim;
// ldk ≥ maxT rounded up to 16, so those loads never leave a head's block.
namespace ctf {

// Attention of the sequences b0 ≤ b < b1 of a fused projection qkv (B, T, 3·H·hd) whose q is already scaled and
// rotated and whose k is rotated (ropeQkvInPlace / rope_qkv_rows), into out (B, T, H·hd), on the calling thread.
// For inference passes that give each thread whole sequences (gpt_infer.cc gptHiddenForward).
void attention_sequences(const float* qkv, float* out, int64_t b0, int64_t b1, int64_t B, int64_t T, int64_t H,
                         int64_t hd, bool causal) {
  const int64_t D = H * hd;
  const Dims d{B, H, T, hd};
  float* base = const_cast<float*>(qkv);  // read only: View holds non-const pointers for the in-place paths
  const View q{base, T * 3 * D, hd, 3 * D}, k{base + D, T * 3 * D, hd, 3 * D}, v{base + 2 * D, T * 3 * D, hd, 3 * D};
  const View o{out, T * D, hd, D};
  std::vector<float> lse(B * H * T);  // forward_unit indexes it by absolute b; only [b0, b1) is written
  std::unique_ptr<Scratch> sc = pool.take(d, H);
  for (int64_t b = b0; b < b1; b++)
    forward_unit(q, k, v, o, lse.data(), nullptr, causal, Rope{nullptr, nullptr}, d, 1.0f, Unit{b, 0, H}, *sc);
  pool.give(std::move(sc));
}

// Rows n0 ≤ n < n1 of the step above; scratch holds hd + round16(pos + 1) floats. Also called by the
// GPT decode step (gpt_infer.cc), which splits rows over its threads.
void decode_attention_rows(const float* qkv, float* kt, float* vc, const float* cos, const float* sin, float* out,
                           int64_t n0, int64_t n1, int64_t H, int64_t hd, int64_t maxT, int64_t ldk, int64_t pos,
                           float scale, float* scratch) {
  const int64_t D = H * hd, L = pos + 1, L16 = round16(L);
  float* qr = scratch;     // (hd) scaled, rotated query
  float* sc = qr + hd;     // (L16) scores, then probabilities
  for (int64_t n = n0; n < n1; n++)
    for (int64_t h = 0; h < H; h++) {
      const float* q = qkv + n * 3 * D + h * hd;
      const float* k = q + D;
      const float* v = q + 2 * D;
      float* K = kt + (n * H + h) * hd * ldk;  // (hd, ldk)
      float* V = vc + (n * H + h) * maxT * hd;  // (maxT, hd)
      rotate_row(q, cos, sin, hd, scale, qr);
      rotate_col(k, cos, sin, hd, K, ldk, pos);
      copy_row(v, hd, V + pos * hd);
      for (int64_t j0 = 0; j0 < L16; j0 += 16) {
        v16 acc = {};
        for (int64_t d = 0; d < hd; d++) acc += qr[d] * load16(K + d * ldk + j0);
        store16(sc + j0, acc);
      }
      for (int64_t j = L; j < L16; j++) sc[j] = -INFINITY;  // columns past pos hold stale or zero keys
      float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
      for (int64_t j = 0; j < L16; j++) mx = std::max(mx, sc[j]);
      float sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < L16; j++) {
        float e = exp_vec(sc[j] - mx);
        sc[j] = e;
        sum += e;
      }
      const float inv = 1.0f / sum;
      float* o = out + n * D + h * hd;
      zero_row(o, hd);
      for (int64_t t = 0; t < L; t++) {
        const float* vt = V + t * hd;
        const float p = sc[t] * inv;
#pragma omp simd
        for (int64_t d = 0; d < hd; d++) o[d] += p * vt[d];
      }
    }
}

}  // namespace ctf

// args: qkv, kt, vc, cos, sin, out, N, H, hd, maxT, ldk, pos, scale
CTF_KERNEL(attentionDecode) {
  const float* qkv = ctf::f32(info, 0, "qkv");
  float* kt = ctf::f32(info, 1, "kCache");
  float* vc = ctf::f32(info, 2, "vCache");
  const float* cos = ctf::f32(info, 3, "cos");
  const float* sin = ctf::f32(info, 4, "sin");
  float* out = ctf::f32(info, 5, "out");
  int64_t N = ctf::integer(info, 6, "N"), H = ctf::integer(info, 7, "H"), hd = ctf::integer(info, 8, "hd"),
          maxT = ctf::integer(info, 9, "maxT"), ldk = ctf::integer(info, 10, "ldk"),
          pos = ctf::integer(info, 11, "pos");
  float scale = (float)ctf::number(info, 12, "scale");
  const int64_t D = H * hd, half = hd / 2;
  if (pos < 0 || pos >= maxT) ctf::fail(info, "attentionDecode: position outside the cache");
  if (ldk < round16(maxT) || hd % 2 != 0)
    ctf::fail(info, "attentionDecode: ldk must be ≥ maxT rounded up to 16, hd even");
  if ((int64_t)ctf::len(info, 0) < N * 3 * D || (int64_t)ctf::len(info, 1) < N * H * hd * ldk ||
      (int64_t)ctf::len(info, 2) < N * H * maxT * hd || (int64_t)ctf::len(info, 3) < half ||
      (int64_t)ctf::len(info, 4) < half || (int64_t)ctf::len(info, 5) < N * D)
    ctf::fail(info, "attentionDecode: buffers smaller than their shapes");
  const int64_t need = hd + round16(pos + 1);
  std::vector<float> buf0(need), buf1(need);
  parallel2(2, [&](int64_t part, int th) {
    ctf::decode_attention_rows(qkv, kt, vc, cos, sin, out, N * part / 2, N * (part + 1) / 2, H, hd, maxT, ldk, pos,
                               scale, th == 0 ? buf0.data() : buf1.data());
  });
  return info.Env().Undefined();
}
