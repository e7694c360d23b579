// Elementwise kernels: add/sub/mul/div with numpy broadcasting (forward, and backward that reduces the
// gradient over the broadcast dims in the same pass), unary activations and their gradients, dropout
// with a mask regenerated from (seed, index), and y += alpha * x.
//
// Broadcast geometry is coalesced in TypeScript (src/engine/ops/elementwise.ts) and passed as an Int32Array
//   geom = [n, d_0 .. d_{n-1}, sa_0 .. sa_{n-1}, sb_0 .. sb_{n-1}]
// out is contiguous with dims d; a and b are read with element strides sa/sb (0 on a broadcast dim).
// The innermost strides are 0 or 1, so every inner loop is a contiguous or a broadcast-scalar loop:
// same shape coalesces to n = 1, (N, D) + (D) to n = 2 with sb = (0, 1); anything else is the strided case.
#include <cmath>
#include <cstring>
#include "common.h"
#include "vecmath.h"

namespace {

enum BinOp { ADD = 0, SUB = 1, MUL = 2, DIV = 3 };
enum UnOp { NEG = 0, ADD_S = 1, MUL_S = 2, EXP = 3, LOG = 4, SQRT = 5, RELU = 6, SILU = 7, GELU = 8 };
constexpr int MAX_DIMS = 8;

struct Geom {
  int n = 0;
  int64_t d[MAX_DIMS], sa[MAX_DIMS], sb[MAX_DIMS];
  int64_t total = 1;
};

using ctf::f32_or_null;

// Largest element offset the strides reach, +1 (the buffer length they need). In double so that a hostile
// geometry cannot overflow past the check.
double extent(const Geom& g, const int64_t* s) {
  double last = 0;
  for (int k = 0; k < g.n; k++) last += (double)(g.d[k] - 1) * (double)s[k];
  return last + 1;
}

Geom read_geom(const Napi::CallbackInfo& info, size_t i, const char* op, size_t lenA, size_t lenB, size_t lenOut) {
  const int32_t* v = ctf::i32(info, i, "geom");
  size_t lv = ctf::len(info, i);
  Geom g;
  g.n = lv > 0 ? v[0] : 0;
  if (g.n < 1 || g.n > MAX_DIMS || lv != (size_t)(1 + 3 * g.n))
    ctf::fail(info,
              std::string(op) + ": broadcast geometry must be [n, dims(n), stridesA(n), stridesB(n)] with 1 ≤ n ≤ 8");
  for (int k = 0; k < g.n; k++) {
    g.d[k] = v[1 + k]; g.sa[k] = v[1 + g.n + k]; g.sb[k] = v[1 + 2 * g.n + k];
    if (g.d[k] < 1 || g.sa[k] < 0 || g.sb[k] < 0) ctf::fail(info, std::string(op) + ": bad broadcast geometry");
    if ((double)g.total * (double)g.d[k] > (double)lenOut)  // checked before multiplying: no overflow
      ctf::fail(info, std::string(op) + ": output length does not match the geometry");
    g.total *= g.d[k];
  }
  int m = g.n - 1;
  if (g.sa[m] > 1 || g.sb[m] > 1) ctf::fail(info, std::string(op) + ": innermost strides must be 0 or 1");
  if ((size_t)g.total != lenOut) ctf::fail(info, std::string(op) + ": output length does not match the geometry");
  if (extent(g, g.sa) > (double)lenA || extent(g, g.sb) > (double)lenB)
    ctf::fail(info, std::string(op) + ": geometry reads past the end of an input");
  return g;
}

// Calls row(outOffset, aOffset, bOffset) for every index of the outer dims d_0..d_{n-2}; rows have length d_{n-1}.
template <class Row>
void for_each_row(const Geom& g, Row row) {
  int64_t inner = g.d[g.n - 1], rows = g.total / inner;
  int64_t idx[MAX_DIMS] = {0};
  int64_t oa = 0, ob = 0;
  for (int64_t r = 0; r < rows; r++) {
    row(r * inner, oa, ob);
    for (int k = g.n - 2; k >= 0; k--) {
      oa += g.sa[k]; ob += g.sb[k];
      if (++idx[k] < g.d[k]) break;
      oa -= g.sa[k] * g.d[k]; ob -= g.sb[k] * g.d[k]; idx[k] = 0;
    }
  }
}

template <int OP>
inline float apply(float x, float y) {
  if constexpr (OP == ADD) return x + y;
  else if constexpr (OP == SUB) return x - y;
  else if constexpr (OP == MUL) return x * y;
  else return x / y;
}

// o (n) = a (n, stride SA) OP b (n, stride SB)
template <int OP, int SA, int SB>
void row_fwd(const float* __restrict a, const float* __restrict b, float* __restrict o, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; j++) o[j] = apply<OP>(a[j * SA], b[j * SB]);
}

// d(out)/d(a or b) times the incoming gradient g.
template <int OP, int WHICH>
inline float grad_term(float g, float a, float b) {
  if constexpr (WHICH == 0) {
    if constexpr (OP == ADD || OP == SUB) return g;
    else if constexpr (OP == MUL) return g * b;
    else return g / b;
  } else {
    if constexpr (OP == ADD) return g;
    else if constexpr (OP == SUB) return -g;
    else if constexpr (OP == MUL) return g * a;
    else return -g * a / (b * b);
  }
}

// t (the gradient of a if WHICH == 0, else of b; stride SA or SB) += grad_term(g (n), a, b).
// A target stride of 0 is a broadcast dim: the row reduces into one element.
template <int OP, int WHICH, int SA, int SB>
void row_bwd(const float* __restrict g, const float* __restrict a, const float* __restrict b, float* __restrict t,
             int64_t n) {
  constexpr int ST = WHICH == 0 ? SA : SB;
  if constexpr (ST == 1) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) t[j] += grad_term<OP, WHICH>(g[j], a[j * SA], b[j * SB]);
  } else {
    float acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = 0; j < n; j++) acc += grad_term<OP, WHICH>(g[j], a[j * SA], b[j * SB]);
    t[0] += acc;
  }
}

using RowFwd = void (*)(const float*, const float*, float*, int64_t);
using RowBwd = void (*)(const float*, const float*, const float*, float*, int64_t);

template <int OP>
RowFwd pick_fwd_op(int sa, int sb) {
  if (sa && sb) return row_fwd<OP, 1, 1>;
  if (sa) return row_fwd<OP, 1, 0>;
  if (sb) return row_fwd<OP, 0, 1>;
  return row_fwd<OP, 0, 0>;
}

RowFwd pick_fwd(int op, int sa, int sb) {
  switch (op) {
    case ADD: return pick_fwd_op<ADD>(sa, sb);
    case SUB: return pick_fwd_op<SUB>(sa, sb);
    case MUL: return pick_fwd_op<MUL>(sa, sb);
    default: return pick_fwd_op<DIV>(sa, sb);
  }
}

template <int OP, int WHICH>
RowBwd pick_bwd_which(int sa, int sb) {
  if (sa && sb) return row_bwd<OP, WHICH, 1, 1>;
  if (sa) return row_bwd<OP, WHICH, 1, 0>;
  if (sb) return row_bwd<OP, WHICH, 0, 1>;
  return row_bwd<OP, WHICH, 0, 0>;
}

template <int OP>
RowBwd pick_bwd_op(int which, int sa, int sb) {
  return which == 0 ? pick_bwd_which<OP, 0>(sa, sb) : pick_bwd_which<OP, 1>(sa, sb);
}

RowBwd pick_bwd(int op, int which, int sa, int sb) {
  switch (op) {
    case ADD: return pick_bwd_op<ADD>(which, sa, sb);
    case SUB: return pick_bwd_op<SUB>(which, sa, sb);
    case MUL: return pick_bwd_op<MUL>(which, sa, sb);
    default: return pick_bwd_op<DIV>(which, sa, sb);
  }
}

int read_op(const Napi::CallbackInfo& info, size_t i, int count, const char* what) {
  int64_t op = ctf::integer(info, i, what);
  if (op < 0 || op >= count) ctf::fail(info, std::string("native kernel: unknown ") + what + " " + std::to_string(op));
  return (int)op;
}

using ctf::exp_vec;

// erfc(x) by Numerical Recipes' erfcc (Chebyshev fit, fractional error < 1.2e-7 everywhere), vectorisable.
// GELU uses 1 + erf(x) = erfc(-x), which keeps the relative accuracy in the negative tail.
inline float erfc_vec(float x) {
  float z = x < 0.0f ? -x : x;
  float t = 1.0f / (1.0f + 0.5f * z);
  float q = 0.17087277f;
  q = q * t - 0.82215223f;
  q = q * t + 1.48851587f;
  q = q * t - 1.13520398f;
  q = q * t + 0.27886807f;
  q = q * t - 0.18628806f;
  q = q * t + 0.09678418f;
  q = q * t + 0.37409196f;
  q = q * t + 1.00002368f;
  float ans = t * exp_vec(-z * z - 1.26551223f + t * q);
  return x >= 0.0f ? ans : 2.0f - ans;
}

// Φ(x), the standard normal CDF.
inline float normal_cdf(float x) { return 0.5f * erfc_vec(-0.70710678118654752f * x); }

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_vec(-x)); }

}  // namespace

// out = a OP b with broadcasting. args: op (0 add, 1 sub, 2 mul, 3 div), a, b, out, geom
// a (extent over sa), b (extent over sb), out (Π d)
CTF_KERNEL(binary) {
  int op = read_op(info, 0, 4, "binary op");
  const float* a = ctf::f32(info, 1, "a");
  const float* b = ctf::f32(info, 2, "b");
  float* out = ctf::f32(info, 3, "out");
  Geom g = read_geom(info, 4, "binary", ctf::len(info, 1), ctf::len(info, 2), ctf::len(info, 3));
  int m = g.n - 1;
  RowFwd row = pick_fwd(op, (int)g.sa[m], (int)g.sb[m]);
  for_each_row(g, [&](int64_t oo, int64_t oa, int64_t ob) { row(a + oa, b + ob, out + oo, g.d[m]); });
  return info.Env().Undefined();
}

// ga += dL/da, gb += dL/db given g = dL/dout; either target may be null. Broadcast dims reduce.
// args: op, g (Π d), a, b, ga (len a) | null, gb (len b) | null, geom
CTF_KERNEL(binaryBackward) {
  int op = read_op(info, 0, 4, "binary op");
  const float* g = ctf::f32(info, 1, "g");
  const float* a = ctf::f32(info, 2, "a");
  const float* b = ctf::f32(info, 3, "b");
  float* ga = f32_or_null(info, 4, "ga");
  float* gb = f32_or_null(info, 5, "gb");
  Geom geo = read_geom(info, 6, "binaryBackward", ctf::len(info, 2), ctf::len(info, 3), ctf::len(info, 1));
  if (ga && ctf::len(info, 4) != ctf::len(info, 2)) ctf::fail(info, "binaryBackward: ga and a differ in length");
  if (gb && ctf::len(info, 5) != ctf::len(info, 3)) ctf::fail(info, "binaryBackward: gb and b differ in length");
  int m = geo.n - 1;
  // One pass per target keeps each inner loop a single vectorisable stream (ga and gb may be one buffer: x*x).
  for (int which = 0; which < 2; which++) {
    float* t = which == 0 ? ga : gb;
    if (!t) continue;
    RowBwd row = pick_bwd(op, which, (int)geo.sa[m], (int)geo.sb[m]);
    for_each_row(geo, [&](int64_t oo, int64_t oa, int64_t ob) {
      row(g + oo, a + oa, b + ob, t + (which == 0 ? oa : ob), geo.d[m]);
    });
  }
  return info.Env().Undefined();
}

// out (n) = f(x (n)); out may be x. args: op (UnOp), x, out, s (the scalar of addScalar / mulScalar)
CTF_KERNEL(unary) {
  int op = read_op(info, 0, 9, "unary op");
  const float* x = ctf::f32(info, 1, "x");
  float* out = ctf::f32(info, 2, "out");
  float s = (float)ctf::number(info, 3, "s");
  int64_t n = (int64_t)ctf::len(info, 1);
  if ((int64_t)ctf::len(info, 2) != n) ctf::fail(info, "unary: x and out differ in length");
  switch (op) {
    case NEG:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) out[i] = -x[i];
      break;
    case ADD_S:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) out[i] = x[i] + s;
      break;
    case MUL_S:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) out[i] = x[i] * s;
      break;
    case EXP:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) out[i] = exp_vec(x[i]);
      break;
    case LOG:
      for (int64_t i = 0; i < n; i++) out[i] = std::log(x[i]);
      break;
    case SQRT:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) out[i] = std::sqrt(x[i]);
      break;
    case RELU:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
      break;
    case SILU:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) out[i] = x[i] * sigmoid(x[i]);
      break;
    case GELU:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) out[i] = x[i] * normal_cdf(x[i]);
      break;
  }
  return info.Env().Undefined();
}

// gx (n) += f'(x) * g (n), using the forward output y (n) where that is cheaper (exp, sqrt).
// args: op, x, y, g, gx, s
CTF_KERNEL(unaryBackward) {
  int op = read_op(info, 0, 9, "unary op");
  const float* x = ctf::f32(info, 1, "x");
  const float* y = ctf::f32(info, 2, "y");
  const float* g = ctf::f32(info, 3, "g");
  float* gx = ctf::f32(info, 4, "gx");
  float s = (float)ctf::number(info, 5, "s");
  int64_t n = (int64_t)ctf::len(info, 1);
  if ((int64_t)ctf::len(info, 2) != n || (int64_t)ctf::len(info, 3) != n || (int64_t)ctf::len(info, 4) != n)
    ctf::fail(info, "unaryBackward: x, y, g and gx must have the same length");
  switch (op) {
    case NEG:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) gx[i] -= g[i];
      break;
    case ADD_S:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) gx[i] += g[i];
      break;
    case MUL_S:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) gx[i] += s * g[i];
      break;
    case EXP:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) gx[i] += g[i] * y[i];
      break;
    case LOG:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) gx[i] += g[i] / x[i];
      break;
    case SQRT:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) gx[i] += 0.5f * g[i] / y[i];
      break;
    case RELU:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) gx[i] += x[i] > 0.0f ? g[i] : 0.0f;
      break;
    case SILU:
#pragma omp simd
      for (int64_t i = 0; i < n; i++) {
        float sg = sigmoid(x[i]);
        gx[i] += g[i] * sg * (1.0f + x[i] * (1.0f - sg));
      }
      break;
    case GELU:
      // d/dx [x Φ(x)] = Φ(x) + x φ(x)
#pragma omp simd
      for (int64_t i = 0; i < n; i++) {
        float cdf = normal_cdf(x[i]);
        float pdf = 0.39894228040143268f * exp_vec(-0.5f * x[i] * x[i]);
        gx[i] += g[i] * (cdf + x[i] * pdf);
      }
      break;
  }
  return info.Env().Undefined();
}

// Inverted dropout: element i is dropped when uniform_at(seed, i) < p, kept ones are scaled by 1/(1-p).
// The backward regenerates the same mask from the seed, so no mask is stored. With an element offset, element i
// draws uniform_at(seed, offset + i): the mask bits of a batch's rows from offset on.
// args: x (n), out (n), p, seed[, offset]
CTF_KERNEL(dropout) {
  const float* x = ctf::f32(info, 0, "x");
  float* out = ctf::f32(info, 1, "out");
  float p = (float)ctf::number(info, 2, "p");
  uint32_t seed = (uint32_t)ctf::integer(info, 3, "seed");
  const uint64_t off = ctf::offset_or_zero(info, 4);
  int64_t n = (int64_t)ctf::len(info, 0);
  if ((int64_t)ctf::len(info, 1) != n) ctf::fail(info, "dropout: x and out differ in length");
  float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp simd
  for (int64_t i = 0; i < n; i++) out[i] = ctf::uniform_at(seed, off + (uint64_t)i) < p ? 0.0f : x[i] * scale;
  return info.Env().Undefined();
}

// gx (n) += mask * g (n) / (1-p), the mask regenerated from seed. args: g, gx, p, seed[, offset]
CTF_KERNEL(dropoutBackward) {
  const float* g = ctf::f32(info, 0, "g");
  float* gx = ctf::f32(info, 1, "gx");
  float p = (float)ctf::number(info, 2, "p");
  uint32_t seed = (uint32_t)ctf::integer(info, 3, "seed");
  const uint64_t off = ctf::offset_or_zero(info, 4);
  int64_t n = (int64_t)ctf::len(info, 0);
  if ((int64_t)ctf::len(info, 1) != n) ctf::fail(info, "dropoutBackward: g and gx differ in length");
  float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp simd
  for (int64_t i = 0; i < n; i++) gx[i] += ctf::uniform_at(seed, off + (uint64_t)i) < p ? 0.0f : g[i] * scale;
  return info.Env().Undefined();
}

// y (n) += alpha * x (n). args: alpha, x, y
CTF_KERNEL(axpy) {
  float alpha = (float)ctf::number(info, 0, "alpha");
  const float* x = ctf::f32(info, 1, "x");
  float* y = ctf::f32(info, 2, "y");
  int64_t n = (int64_t)ctf::len(info, 1);
  if ((int64_t)ctf::len(info, 2) != n) ctf::fail(info, "axpy: x and y differ in length");
#pragma omp simd
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
  return info.Env().Undefined();
}
