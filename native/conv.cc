// 2-D convolution by im2col + OpenBLAS sgemm, and nearest upsampling.
//
// Work is split over images: with T threads each runs im2col and a single-threaded sgemm on its own images
// (OpenBLAS is switched to one thread meanwhile), so the copies run in parallel too and no thread waits
// on another's small GEMM. Columns are built one chunk of output rows at a time (~512 KiB, L2-resident)
// in a JS-owned scratch array sized by conv2dScratchSize. 1×1 stride-1 unpadded convolutions skip im2col.
// For stride 1 the input gradient is itself a convolution, of dy with the flipped, transposed kernel
// (padding k−1−p), which replaces col2im's scattered adds by im2col's copies and one accumulating sgemm.
#include <cblas.h>
#include <algorithm>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>
#include "common.h"

namespace {

float* f32_or_null(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() > i && (info[i].IsNull() || info[i].IsUndefined())) return nullptr;
  return ctf::f32(info, i, what);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

struct ConvShape {
  int64_t N, C, H, W, O, kh, kw, sh, sw, ph, pw, Ho, Wo;
  int64_t CK() const { return C * kh * kw; }  // rows of the column matrix
  int64_t P() const { return Ho * Wo; }       // output pixels per image
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
};

// Reads N, C, H, W, O, kh, kw, sh, sw, ph, pw starting at argument i and derives Ho, Wo.
ConvShape read_shape(const Napi::CallbackInfo& info, size_t i) {
  static const char* names[] = {"N", "C", "H", "W", "O", "kh", "kw", "strideH", "strideW", "padH", "padW"};
  int64_t v[11];
  for (int k = 0; k < 11; k++) v[k] = ctf::integer(info, i + k, names[k]);
  ConvShape s{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], 0, 0};
  if (s.N < 0 || s.C <= 0 || s.H <= 0 || s.W <= 0 || s.O <= 0 || s.kh <= 0 || s.kw <= 0 || s.sh <= 0 || s.sw <= 0 ||
      s.ph < 0 || s.pw < 0)
    ctf::fail(info, "conv2d kernel: sizes must be positive (padding ≥ 0)");
  if (s.H + 2 * s.ph < s.kh || s.W + 2 * s.pw < s.kw) ctf::fail(info, "conv2d kernel: kernel larger than the padded input");
  s.Ho = (s.H + 2 * s.ph - s.kh) / s.sh + 1;
  s.Wo = (s.W + 2 * s.pw - s.kw) / s.sw + 1;
  return s;
}

// dx = conv(dy, flip(w)ᵀ) with padding k−1−p: possible for stride 1 when p ≤ k−1.
bool dx_as_conv(const ConvShape& s) {
  return s.sh == 1 && s.sw == 1 && s.ph <= s.kh - 1 && s.pw <= s.kw - 1 && !s.pointwise();
}
ConvShape grad_input_shape(const ConvShape& s) {
  return {s.N, s.O, s.Ho, s.Wo, s.C, s.kh, s.kw, 1, 1, s.kh - 1 - s.ph, s.kw - 1 - s.pw, s.H, s.W};
}

// Threads over images: one per OpenBLAS thread, at most one per image, and only when the batch is
// big enough to amortise starting them (~4 MFLOP in all).
int image_threads(const ConvShape& s) {
  int64_t t = std::min<int64_t>(openblas_get_num_threads(), s.N);
  if (t < 2 || 2 * s.O * s.CK() * s.P() * s.N < 4000000) return 1;
  return (int)std::min<int64_t>(t, 8);
}

// Output rows per column chunk: the chunk (CK, rows*Wo) stays around 512 KiB (half an L2) so im2col writes
// it and sgemm packs it from L2 instead of streaming a whole image's columns through memory.
int64_t chunk_rows(const ConvShape& s) {
  return std::clamp<int64_t>((512 * 1024 / 4) / s.CK() / s.Wo, 1, s.Ho);
}
int64_t chunk_size(const ConvShape& s) { return s.pointwise() ? 0 : s.CK() * chunk_rows(s) * s.Wo; }

// Scratch layout (floats): T column chunks | T−1 dW partials (O, CK) | flipped kernel (C, O*kh*kw).
struct Scratch {
  int64_t col, dw_part, flipped, total;
};
Scratch scratch_layout(const ConvShape& s) {
  const int64_t T = image_threads(s);
  int64_t col = chunk_size(s);
  if (dx_as_conv(s)) col = std::max(col, chunk_size(grad_input_shape(s)));
  Scratch l{col, T * col, T * col + (T - 1) * s.O * s.CK(), 0};
  l.total = l.flipped + (dx_as_conv(s) ? s.C * s.O * s.kh * s.kw : 0);
  return l;
}

void check_len(const Napi::CallbackInfo& info, size_t i, int64_t need, const char* what) {
  if ((int64_t)ctf::len(info, i) != need)
    ctf::fail(info, std::string("conv2d kernel: ") + what + " has " + std::to_string(ctf::len(info, i)) +
                        " elements, expected " + std::to_string(need));
}

// Runs body(thread, n0, n1) over image ranges; OpenBLAS runs single-threaded inside when T > 1.
void for_images(int T, int64_t N, const std::function<void(int, int64_t, int64_t)>& body) {
  if (T <= 1) { body(0, 0, N); return; }
  int prev = openblas_get_num_threads();
  openblas_set_num_threads(1);
  std::vector<std::thread> pool;
  for (int t = 1; t < T; t++) pool.emplace_back(body, t, N * t / T, N * (t + 1) / T);
  body(0, 0, N / T);
  for (auto& th : pool) th.join();
  openblas_set_num_threads(prev);
}

// Output columns ow in [lo, hi) whose tap kj lands inside the image (0 ≤ ow*sw − pw + kj < W).
inline void valid_cols(const ConvShape& s, int64_t kj, int64_t& lo, int64_t& hi) {
  lo = std::clamp<int64_t>(ceil_div(s.pw - kj, s.sw), 0, s.Wo);
  hi = std::clamp<int64_t>(ceil_div(s.W + s.pw - kj, s.sw), lo, s.Wo);
}

// x (C, H, W), output rows [oh0, oh1) -> col (C*kh*kw, (oh1-oh0)*Wo); taps outside the image read 0.
void im2col(const float* __restrict x, const ConvShape& s, int64_t oh0, int64_t oh1, float* __restrict col) {
  const int64_t Pc = (oh1 - oh0) * s.Wo, H = s.H, W = s.W, Wo = s.Wo;
  // Per tap: output columns [lo, hi) and output rows [va, vb) of this chunk whose tap lies inside the image.
  int64_t lo[64], hi[64], va[64], vb[64];
  const bool small = s.kh <= 64 && s.kw <= 64;
  for (int64_t k = 0; small && k < s.kw; k++) valid_cols(s, k, lo[k], hi[k]);
  for (int64_t k = 0; small && k < s.kh; k++) {
    va[k] = std::clamp<int64_t>(ceil_div(s.ph - k, s.sh), oh0, oh1);
    vb[k] = std::clamp<int64_t>(ceil_div(H + s.ph - k, s.sh), va[k], oh1);
  }
  // "Same" stride-1 convolutions: output and input rows have one length, so a tap's whole row range is
  // one shifted contiguous copy; only the columns that wrapped around an edge are zeroed afterwards.
  const bool flat = small && s.sh == 1 && s.sw == 1 && W == Wo;
  for (int64_t c = 0; c < s.C; c++)
    for (int64_t ki = 0; ki < s.kh; ki++)
      for (int64_t kj = 0; kj < s.kw; kj++) {
        float* row = col + ((c * s.kh + ki) * s.kw + kj) * Pc;  // (oh1-oh0, Wo)
        const float* xc = x + c * H * W;                        // (H, W)
        int64_t l, h, a, b;
        if (small) { l = lo[kj]; h = hi[kj]; a = va[ki]; b = vb[ki]; }
        else {
          valid_cols(s, kj, l, h);
          a = std::clamp<int64_t>(ceil_div(s.ph - ki, s.sh), oh0, oh1);
          b = std::clamp<int64_t>(ceil_div(H + s.ph - ki, s.sh), a, oh1);
        }
        std::fill(row, row + (a - oh0) * Wo, 0.0f);
        std::fill(row + (b - oh0) * Wo, row + Pc, 0.0f);
        if (flat) {
          float* d = row - oh0 * W;                              // d[oh*W + ow]
          const int64_t shift = (ki - s.ph) * W + (kj - s.pw);  // source = xc[g + shift]
          const int64_t c0 = std::max(a * W, -shift), c1 = std::min(b * W, H * W - shift);
          if (c1 > c0) std::memcpy(d + c0, xc + c0 + shift, (c1 - c0) * sizeof(float));
          if (l > 0 || h < W)
            for (int64_t oh = a; oh < b; oh++) {
              for (int64_t ow = 0; ow < l; ow++) d[oh * W + ow] = 0;
              for (int64_t ow = h; ow < W; ow++) d[oh * W + ow] = 0;
            }
          continue;
        }
        for (int64_t oh = a; oh < b; oh++) {
          float* __restrict d = row + (oh - oh0) * Wo;
          const float* src = xc + (oh * s.sh - s.ph + ki) * W - s.pw + kj;  // src[ow*sw] is the tap of column ow
          for (int64_t ow = 0; ow < l; ow++) d[ow] = 0;
          for (int64_t ow = l; ow < h; ow++) d[ow] = src[ow * s.sw];
          for (int64_t ow = h; ow < Wo; ow++) d[ow] = 0;
        }
      }
}

// dx (C, H, W) += col2im(dcol (C*kh*kw, (oh1-oh0)*Wo)) for output rows [oh0, oh1); outside taps dropped.
// Only used for strided convolutions (stride 1 goes through conv_rows on the flipped kernel).
void col2im_add(const float* __restrict dcol, const ConvShape& s, int64_t oh0, int64_t oh1, float* __restrict dx) {
  const int64_t Pc = (oh1 - oh0) * s.Wo;
  for (int64_t c = 0; c < s.C; c++)
    for (int64_t ki = 0; ki < s.kh; ki++)
      for (int64_t kj = 0; kj < s.kw; kj++) {
        const float* row = dcol + ((c * s.kh + ki) * s.kw + kj) * Pc;  // (oh1-oh0, Wo)
        int64_t lo, hi;
        valid_cols(s, kj, lo, hi);
        for (int64_t oh = oh0; oh < oh1; oh++) {
          const int64_t ih = oh * s.sh - s.ph + ki;
          if (ih < 0 || ih >= s.H) continue;
          const float* d = row + (oh - oh0) * s.Wo;
          float* dst = dx + (c * s.H + ih) * s.W - s.pw + kj;  // dst[ow*sw] receives column ow
          for (int64_t ow = lo; ow < hi; ow++) dst[ow * s.sw] += d[ow];
        }
      }
}

// One image: y (O, P) = w (O, CK) @ im2col(x (C, H, W)) + beta * y, chunk by chunk of output rows.
void conv_rows(const float* x, const float* w, const ConvShape& s, float beta, float* col, float* y) {
  const int64_t CK = s.CK(), P = s.P();
  if (s.pointwise()) {  // the image is its own column matrix (C, P)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.O, P, CK, 1.0f, w, CK, x, P, beta, y, P);
    return;
  }
  const int64_t R = chunk_rows(s);
  for (int64_t oh0 = 0; oh0 < s.Ho; oh0 += R) {
    const int64_t oh1 = std::min(oh0 + R, s.Ho), Pc = (oh1 - oh0) * s.Wo;
    im2col(x, s, oh0, oh1, col);  // (CK, Pc)
    // y[:, oh0*Wo : oh1*Wo] (O, Pc), row stride P
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.O, Pc, CK, 1.0f, w, CK, col, Pc, beta, y + oh0 * s.Wo, P);
  }
}

}  // namespace

// Floats of scratch conv2dForward/conv2dBackward need for this shape (depends on the BLAS thread count).
// args: N, C, H, W, O, kh, kw, strideH, strideW, padH, padW
CTF_KERNEL(conv2dScratchSize) {
  return Napi::Number::New(info.Env(), (double)scratch_layout(read_shape(info, 0)).total);
}

// x (N, C, H, W), w (O, C, kh, kw), bias (O) or null -> y (N, O, Ho, Wo) (overwritten).
// args: x, w, bias, y, scratch, N, C, H, W, O, kh, kw, strideH, strideW, padH, padW
CTF_KERNEL(conv2dForward) {
  const float* x = ctf::f32(info, 0, "x");
  const float* w = ctf::f32(info, 1, "w");
  const float* bias = f32_or_null(info, 2, "bias");
  float* y = ctf::f32(info, 3, "y");
  float* scratch = ctf::f32(info, 4, "scratch");
  const ConvShape s = read_shape(info, 5);
  const Scratch l = scratch_layout(s);
  const int64_t P = s.P();
  check_len(info, 0, s.N * s.C * s.H * s.W, "x");
  check_len(info, 1, s.O * s.CK(), "w");
  if (bias) check_len(info, 2, s.O, "bias");
  check_len(info, 3, s.N * s.O * P, "y");
  if ((int64_t)ctf::len(info, 4) < l.total) ctf::fail(info, "conv2dForward: scratch smaller than conv2dScratchSize");
  if (s.N == 0) return info.Env().Undefined();

  for_images(image_threads(s), s.N, [&](int t, int64_t n0, int64_t n1) {
    float* col = scratch + t * l.col;  // this thread's column chunk
    for (int64_t n = n0; n < n1; n++) {
      float* yn = y + n * s.O * P;  // (O, P)
      if (bias) for (int64_t o = 0; o < s.O; o++) std::fill(yn + o * P, yn + (o + 1) * P, bias[o]);
      conv_rows(x + n * s.C * s.H * s.W, w, s, bias ? 1.0f : 0.0f, col, yn);
    }
  });
  return info.Env().Undefined();
}

// Given x (N, C, H, W), w (O, C, kh, kw), dy (N, O, Ho, Wo): ADDS into dx (N, C, H, W), dw (O, C, kh, kw),
// db (O); any of the three may be null. The columns are recomputed rather than kept from the forward.
// args: x, w, dy, dx, dw, db, scratch, N, C, H, W, O, kh, kw, strideH, strideW, padH, padW
CTF_KERNEL(conv2dBackward) {
  const float* x = ctf::f32(info, 0, "x");
  const float* w = ctf::f32(info, 1, "w");
  const float* dy = ctf::f32(info, 2, "dy");
  float* dx = f32_or_null(info, 3, "dx");
  float* dw = f32_or_null(info, 4, "dw");
  float* db = f32_or_null(info, 5, "db");
  float* scratch = ctf::f32(info, 6, "scratch");
  const ConvShape s = read_shape(info, 7);
  const Scratch l = scratch_layout(s);
  const int64_t CK = s.CK(), P = s.P(), O = s.O, CHW = s.C * s.H * s.W;
  check_len(info, 0, s.N * CHW, "x");
  check_len(info, 1, O * CK, "w");
  check_len(info, 2, s.N * O * P, "dy");
  if (dx) check_len(info, 3, s.N * CHW, "dx");
  if (dw) check_len(info, 4, O * CK, "dw");
  if (db) check_len(info, 5, O, "db");
  if ((int64_t)ctf::len(info, 6) < l.total) ctf::fail(info, "conv2dBackward: scratch smaller than conv2dScratchSize");
  if (s.N == 0) return info.Env().Undefined();

  const int T = image_threads(s);
  const bool as_conv = dx && dx_as_conv(s);
  const ConvShape st = grad_input_shape(s);   // dy (N, O, Ho, Wo) ⊛ flipped (C, O, kh, kw) -> dx (N, C, H, W)
  float* flipped = scratch + l.flipped;        // (C, O, kh, kw)
  if (as_conv)
    for (int64_t o = 0; o < O; o++)
      for (int64_t c = 0; c < s.C; c++)
        for (int64_t ki = 0; ki < s.kh; ki++)
          for (int64_t kj = 0; kj < s.kw; kj++)
            flipped[((c * O + o) * s.kh + ki) * s.kw + kj] = w[((o * s.C + c) * s.kh + s.kh - 1 - ki) * s.kw + s.kw - 1 - kj];
  float* dw_part = scratch + l.dw_part;        // (T-1, O, CK)
  std::vector<double> db_part(db ? T * O : 0);  // (T, O)
  if (dw && T > 1) std::fill(dw_part, dw_part + (T - 1) * O * CK, 0.0f);
  const int64_t R = chunk_rows(s);

  for_images(T, s.N, [&](int t, int64_t n0, int64_t n1) {
    float* col = scratch + t * l.col;                       // column chunk
    float* dw_t = t == 0 ? dw : dw_part + (t - 1) * O * CK;  // (O, CK)
    for (int64_t n = n0; n < n1; n++) {
      const float* xn = x + n * CHW;      // (C, H, W)
      const float* dyn = dy + n * O * P;  // (O, P)
      float* dxn = dx ? dx + n * CHW : nullptr;
      if (s.pointwise()) {
        if (dw) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, CK, P, 1.0f, dyn, P, xn, P, 1.0f, dw_t, CK);
        if (dx) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CK, P, O, 1.0f, w, CK, dyn, P, 1.0f, dxn, P);
      } else {
        for (int64_t oh0 = 0; oh0 < s.Ho; oh0 += R) {
          const int64_t oh1 = std::min(oh0 + R, s.Ho), Pc = (oh1 - oh0) * s.Wo;
          const float* dyc = dyn + oh0 * s.Wo;  // (O, Pc), row stride P
          if (dw) {
            im2col(xn, s, oh0, oh1, col);
            // dw (O, CK) += dy_chunk (O, Pc) @ col (CK, Pc)ᵀ
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, CK, Pc, 1.0f, dyc, P, col, Pc, 1.0f, dw_t, CK);
          }
          if (dx && !as_conv) {
            // dcol (CK, Pc) = w (O, CK)ᵀ @ dy_chunk (O, Pc), scattered back onto the image
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CK, Pc, O, 1.0f, w, CK, dyc, P, 0.0f, col, Pc);
            col2im_add(col, s, oh0, oh1, dxn);
          }
        }
        if (as_conv) conv_rows(dyn, flipped, st, 1.0f, col, dxn);
      }
      if (db)
        for (int64_t o = 0; o < O; o++) {
          float acc = 0;  // one image row (P values) in float lanes; images and threads add up in double
#pragma omp simd reduction(+ : acc)
          for (int64_t p = 0; p < P; p++) acc += dyn[o * P + p];
          db_part[t * O + o] += acc;
        }
    }
  });

  if (dw)
    for (int t = 1; t < T; t++) {
      const float* part = dw_part + (t - 1) * O * CK;
      for (int64_t i = 0; i < O * CK; i++) dw[i] += part[i];
    }
  if (db)
    for (int64_t o = 0; o < O; o++) {
      double acc = 0;
      for (int t = 0; t < T; t++) acc += db_part[t * O + o];
      db[o] += (float)acc;
    }
  return info.Env().Undefined();
}

// x (NC, H, W) -> y (NC, H*s, W*s), each input pixel copied to an s×s block.
// args: x, y, NC, H, W, scale
CTF_KERNEL(upsampleNearestForward) {
  const float* x = ctf::f32(info, 0, "x");
  float* y = ctf::f32(info, 1, "y");
  int64_t NC = ctf::integer(info, 2, "NC"), H = ctf::integer(info, 3, "H"), W = ctf::integer(info, 4, "W");
  int64_t sc = ctf::integer(info, 5, "scale");
  if (NC < 0 || H < 0 || W < 0 || sc < 1) ctf::fail(info, "upsampleNearestForward: bad sizes");
  if ((int64_t)ctf::len(info, 0) != NC * H * W || (int64_t)ctf::len(info, 1) != NC * H * W * sc * sc)
    ctf::fail(info, "upsampleNearestForward: buffer lengths do not match (NC, H, W, scale)");
  const int64_t Wy = W * sc;
  for (int64_t p = 0; p < NC * H; p++) {
    const float* src = x + p * W;  // one input row (W)
    float* dst = y + p * sc * Wy;  // its sc output rows (sc, W*sc)
    for (int64_t j = 0; j < W; j++)
      for (int64_t r = 0; r < sc; r++) dst[j * sc + r] = src[j];
    for (int64_t r = 1; r < sc; r++) std::memcpy(dst + r * Wy, dst, Wy * sizeof(float));
  }
  return info.Env().Undefined();
}

// dy (NC, H*s, W*s) -> dx (NC, H, W) += sum over each s×s block.
// args: dy, dx, NC, H, W, scale
CTF_KERNEL(upsampleNearestBackward) {
  const float* dy = ctf::f32(info, 0, "dy");
  float* dx = ctf::f32(info, 1, "dx");
  int64_t NC = ctf::integer(info, 2, "NC"), H = ctf::integer(info, 3, "H"), W = ctf::integer(info, 4, "W");
  int64_t sc = ctf::integer(info, 5, "scale");
  if (NC < 0 || H < 0 || W < 0 || sc < 1) ctf::fail(info, "upsampleNearestBackward: bad sizes");
  if ((int64_t)ctf::len(info, 1) != NC * H * W || (int64_t)ctf::len(info, 0) != NC * H * W * sc * sc)
    ctf::fail(info, "upsampleNearestBackward: buffer lengths do not match (NC, H, W, scale)");
  const int64_t Wy = W * sc;
  for (int64_t p = 0; p < NC * H; p++) {
    const float* src = dy + p * sc * Wy;  // (sc, W*sc)
    float* dst = dx + p * W;              // (W)
    for (int64_t j = 0; j < W; j++) {
      float acc = 0;
      for (int64_t r = 0; r < sc; r++)
        for (int64_t q = 0; q < sc; q++) acc += src[r * Wy + j * sc + q];
      dst[j] += acc;
    }
  }
  return info.Env().Undefined();
}
