// 2-D convolution (NCHW, cross-correlation like torch) and nearest upsampling.
//
// 3×3 stride-1 convolutions with ≥ 8 channels in and out use Winograd F(2×2, 3×3) for the output, the
// input gradient and the weight gradient (2.25× fewer multiplies; see winograd_image). Everything else
// goes through im2col + OpenBLAS sgemm, one chunk of output rows at a time (~512 KiB, L2-resident);
// 1×1 stride-1 unpadded convolutions skip im2col. For stride 1 the input gradient is itself a
// convolution, of dy with the flipped, transposed kernel (padding k−1−p); strided ones use col2im.
//
// Work is split over images: with T threads each transforms and multiplies its own images with a
// single-threaded sgemm (OpenBLAS is switched to one thread meanwhile), so the copies and transforms run
// in parallel too and no thread waits on another's small GEMM. All buffers live in a JS-owned scratch
// array sized by conv2dScratchSize.
#include <cblas.h>
#include <algorithm>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>
#include "common.h"

namespace {

using ctf::f32_or_null;

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
  if (s.H + 2 * s.ph < s.kh || s.W + 2 * s.pw < s.kw)
    ctf::fail(info, "conv2d kernel: kernel larger than the padded input");
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

// Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions with enough channels to feed its 16 GEMMs.
bool winograd(const ConvShape& s) { return s.kh == 3 && s.kw == 3 && s.sh == 1 && s.sw == 1 && s.C >= 8 && s.O >= 8; }
// Tile rows (of ⌈Wo/2⌉ 2×2 output tiles) per chunk: the transformed input (16, C, T) and products
// (16, O, T) together stay around 1 MiB, with at least ~64 tiles per GEMM.
int64_t wino_tile_rows(const ConvShape& s) {
  const int64_t Th = (s.Ho + 1) / 2, Tw = (s.Wo + 1) / 2;
  const int64_t tiles = std::max<int64_t>((1 << 18) / (16 * (s.C + s.O)), 64);
  return std::clamp<int64_t>(tiles / Tw, 1, Th);
}
int64_t wino_size(const ConvShape& s) {
  const int64_t Tw = (s.Wo + 1) / 2;
  const int64_t R = wino_tile_rows(s);
  return 16 * (s.C + s.O) * R * Tw + (2 * R + 2) * 2 * (Tw + 1) + 4 * Tw;
}

// Scratch layout (floats): T per-thread work areas (column chunk or Winograd buffers) | dW partials:
// T−1 × (O, CK), or T × (16, O, C) in the Winograd domain | transformed kernel: Winograd U (16, O, C),
// or for dx the flipped kernel (C, O, kh, kw) or its Winograd form (16, C, O).
struct Scratch {
  int64_t work, dw_part, weights, total;
};
Scratch scratch_layout(const ConvShape& s) {
  const int64_t T = image_threads(s);
  int64_t work = chunk_size(s), weights = 0;
  if (winograd(s)) { work = std::max(work, wino_size(s)); weights = 16 * s.O * s.C; }
  if (dx_as_conv(s)) {
    const ConvShape st = grad_input_shape(s);
    work = std::max(work, winograd(st) ? wino_size(st) : chunk_size(st));
    weights = std::max(weights, winograd(st) ? 16 * s.C * s.O : s.C * s.O * s.kh * s.kw);
  }
  const int64_t dw_part = winograd(s) ? T * 16 * s.O * s.C : (T - 1) * s.O * s.CK();
  Scratch l{work, T * work, T * work + dw_part, 0};
  l.total = l.weights + weights;
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

// Winograd F(2×2, 3×3) (Lavin & Gray, 2016): a 2×2 output tile is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A over the 4×4
// input patch d, so per tile and channel pair 16 multiplies replace 36; summed over input channels the
// 16 element-wise products become 16 GEMMs (O, C) @ (C, tiles).
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],  Aᵀ = [1 1 1 0; 0 1 −1 −1]

// w (O, C, 3, 3) -> U (16, O, C); with flip, the kernel of the input gradient: U (16, C, O) from
// w'[c][o][u][v] = w[o][c][2−u][2−v].
void winograd_weights(const float* w, int64_t O, int64_t C, bool flip, float* U) {
  const int64_t P = flip ? C : O, Q = flip ? O : C;
  for (int64_t p = 0; p < P; p++)
    for (int64_t q = 0; q < Q; q++) {
      float g[3][3], t[4][3];
      for (int u = 0; u < 3; u++)
        for (int v = 0; v < 3; v++)
          g[u][v] = flip ? w[((q * C + p) * 3 + 2 - u) * 3 + 2 - v] : w[((p * C + q) * 3 + u) * 3 + v];
      for (int v = 0; v < 3; v++) {  // t = G g
        t[0][v] = g[0][v];
        t[1][v] = 0.5f * (g[0][v] + g[1][v] + g[2][v]);
        t[2][v] = 0.5f * (g[0][v] - g[1][v] + g[2][v]);
        t[3][v] = g[2][v];
      }
      for (int i = 0; i < 4; i++) {  // U = t Gᵀ
        float* u = U + (i * 4) * P * Q + p * Q + q;
        u[0] = t[i][0];
        u[P * Q] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[2 * P * Q] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[3 * P * Q] = t[i][2];
      }
    }
}

// The per-thread Winograd work area: V (16, C, T) | M (16, O, T) | split input rows (2R + 2, 2, Tw + 1) |
// one row of output tiles (4, Tw), for T = R·Tw tiles per chunk. Inner loops run over tile columns with
// unit stride so they vectorise.
struct WinoWork {
  int64_t Th, Tw, R;
  float *V, *M, *split, *out;
  WinoWork(const ConvShape& s, float* work)
      : Th((s.Ho + 1) / 2), Tw((s.Wo + 1) / 2), R(wino_tile_rows(s)), V(work), M(V + 16 * s.C * R * Tw),
        split(M + 16 * s.O * R * Tw), out(split + (2 * R + 2) * 2 * (Tw + 1)) {}
};

// V (16, C, T) = Bᵀ d B for every 4×4 input patch d of tile rows [ty0, ty1) (patch of tile (ty, tx) starts
// at input (2ty − ph, 2tx − pw); zero outside the image).
void wino_input(const float* x, const ConvShape& s, const WinoWork& k, int64_t ty0, int64_t ty1) {
  const int64_t C = s.C, H = s.H, W = s.W, Tw = k.Tw, S = Tw + 1;
  const int64_t T = (ty1 - ty0) * Tw, xs = C * T;
  // The input rows the chunk touches, split into even and odd columns, so patch column j of tile tx is
  // even[tx], odd[tx], even[tx+1], odd[tx+1] for j = 0..3. Both columns of pair q are inside for q in [q0, q1).
  const int64_t q0 = std::min<int64_t>((s.pw + 1) / 2, S), q1 = std::clamp<int64_t>((W + s.pw) / 2, q0, S);
  for (int64_t c = 0; c < C; c++) {
    for (int64_t r = 0; r < 2 * (ty1 - ty0) + 2; r++) {
      float* __restrict e = k.split + 2 * r * S;
      float* __restrict od = e + S;
      const int64_t ih = 2 * ty0 - s.ph + r;
      if (ih < 0 || ih >= H) { std::fill(e, e + 2 * S, 0.0f); continue; }
      const float* __restrict xr = x + (c * H + ih) * W - s.pw;  // xr[q] is image column q − pw
      auto at = [&](int64_t q) { return q >= s.pw && q < W + s.pw ? xr[q] : 0.0f; };
      for (int64_t j = 0; j < q0; j++) { e[j] = at(2 * j); od[j] = at(2 * j + 1); }
      for (int64_t j = q0; j < q1; j++) { e[j] = xr[2 * j]; od[j] = xr[2 * j + 1]; }
      for (int64_t j = q1; j < S; j++) { e[j] = at(2 * j); od[j] = at(2 * j + 1); }
    }
    for (int64_t ty = ty0; ty < ty1; ty++) {
      const float* e0 = k.split + 2 * (2 * (ty - ty0)) * S;
      const float *o0 = e0 + S, *e1 = o0 + S, *o1 = e1 + S, *e2 = o1 + S, *o2 = e2 + S, *e3 = o2 + S, *o3 = e3 + S;
      float* __restrict v = k.V + c * T + (ty - ty0) * Tw;  // v[ξ*xs + tx]
      // Row i of Bᵀ d is a combination (a0..a3 over the patch columns) of patch rows; then · B.
#define CTF_WINO_ROW(i, A0, A1, A2, A3)                     \
  {                                                         \
    const float a0 = (A0), a1 = (A1), a2 = (A2), a3 = (A3); \
    v[(i * 4 + 0) * xs + tx] = a0 - a2;                     \
    v[(i * 4 + 1) * xs + tx] = a1 + a2;                     \
    v[(i * 4 + 2) * xs + tx] = a2 - a1;                     \
    v[(i * 4 + 3) * xs + tx] = a1 - a3;                     \
  }
#pragma omp simd
      for (int64_t tx = 0; tx < Tw; tx++) {
        CTF_WINO_ROW(0, e0[tx] - e2[tx], o0[tx] - o2[tx], e0[tx + 1] - e2[tx + 1], o0[tx + 1] - o2[tx + 1])
        CTF_WINO_ROW(1, e1[tx] + e2[tx], o1[tx] + o2[tx], e1[tx + 1] + e2[tx + 1], o1[tx + 1] + o2[tx + 1])
        CTF_WINO_ROW(2, e2[tx] - e1[tx], o2[tx] - o1[tx], e2[tx + 1] - e1[tx + 1], o2[tx + 1] - o1[tx + 1])
        CTF_WINO_ROW(3, e1[tx] - e3[tx], o1[tx] - o3[tx], e1[tx + 1] - e3[tx + 1], o1[tx + 1] - o3[tx + 1])
      }
#undef CTF_WINO_ROW
    }
  }
}

// One image: y (O, Ho, Wo) += x (C, H, W) ⊛ kernel given as U (16, O, C), padding (ph, pw), stride 1.
void winograd_image(const float* x, const float* U, const ConvShape& s, float* work, float* y) {
  const WinoWork k(s, work);
  const int64_t O = s.O, C = s.C, Ho = s.Ho, Wo = s.Wo, Tw = k.Tw, Tf = Wo / 2;  // Tf: tiles with 2 output columns
  for (int64_t ty0 = 0; ty0 < k.Th; ty0 += k.R) {
    const int64_t ty1 = std::min(ty0 + k.R, k.Th), T = (ty1 - ty0) * Tw, ms = O * T;
    wino_input(x, s, k, ty0, ty1);
    for (int64_t i = 0; i < 16; i++)  // M[ξ] (O, T) = U[ξ] (O, C) @ V[ξ] (C, T)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, O, T, C, 1.0f, U + i * O * C, C, k.V + i * C * T, T, 0.0f,
                  k.M + i * ms, T);
    for (int64_t o = 0; o < O; o++)
      for (int64_t ty = ty0; ty < ty1; ty++) {
        const float* __restrict m = k.M + o * T + (ty - ty0) * Tw;  // m[ξ*ms + tx]
        float* __restrict out = k.out;  // out[(2i + j)*Tw + tx] is output pixel (2ty + i, 2tx + j)
#pragma omp simd
        for (int64_t tx = 0; tx < Tw; tx++) {
          float q[2][4];  // Aᵀ m, then · A
          for (int j = 0; j < 4; j++) {
            const float m0 = m[j * ms + tx], m1 = m[(4 + j) * ms + tx], m2 = m[(8 + j) * ms + tx],
                        m3 = m[(12 + j) * ms + tx];
            q[0][j] = m0 + m1 + m2;
            q[1][j] = m1 - m2 - m3;
          }
          out[tx] = q[0][0] + q[0][1] + q[0][2];
          out[Tw + tx] = q[0][1] - q[0][2] - q[0][3];
          out[2 * Tw + tx] = q[1][0] + q[1][1] + q[1][2];
          out[3 * Tw + tx] = q[1][1] - q[1][2] - q[1][3];
        }
        for (int64_t i = 0; i < 2 && 2 * ty + i < Ho; i++) {
          float* __restrict yr = y + (o * Ho + 2 * ty + i) * Wo;
          const float* __restrict even = out + 2 * i * Tw;
          const float* __restrict odd = even + Tw;
          for (int64_t tx = 0; tx < Tf; tx++) {
            yr[2 * tx] += even[tx];
            yr[2 * tx + 1] += odd[tx];
          }
          if (Tf < Tw) yr[2 * Tf] += even[Tf];  // odd Wo: the last tile has one output column
        }
      }
  }
}

// The weight gradient in the Winograd domain: with y = Aᵀ[U ⊙ V]A per tile, dL/dU = (A dY Aᵀ) ⊙ V, so
// dU[ξ] (O, C) += Ŷ[ξ] (O, T) @ V[ξ] (C, T)ᵀ over all tiles; dw = Gᵀ dU G once at the end (wino_dw_finish).
// One image: x (C, H, W), dy (O, Ho, Wo) -> dU (16, O, C) +=.
void winograd_dw_image(const float* x, const float* dy, const ConvShape& s, float* work, float* dU) {
  const WinoWork k(s, work);
  const int64_t O = s.O, C = s.C, Ho = s.Ho, Wo = s.Wo, Tw = k.Tw;
  for (int64_t ty0 = 0; ty0 < k.Th; ty0 += k.R) {
    const int64_t ty1 = std::min(ty0 + k.R, k.Th), T = (ty1 - ty0) * Tw, ms = O * T;
    wino_input(x, s, k, ty0, ty1);
    for (int64_t o = 0; o < O; o++)
      for (int64_t ty = ty0; ty < ty1; ty++) {
        // dY tile rows 2ty, 2ty+1 split into even/odd columns (0 past the edge): a b / c d per tile.
        float* __restrict ab = k.out;  // (4, Tw): a, b, c, d
        for (int64_t i = 0; i < 2; i++) {
          float* __restrict ev = ab + 2 * i * Tw;
          float* __restrict od = ev + Tw;
          if (2 * ty + i >= Ho) { std::fill(ev, ev + 2 * Tw, 0.0f); continue; }
          const float* __restrict r = dy + (o * Ho + 2 * ty + i) * Wo;
          for (int64_t tx = 0; tx < Wo / 2; tx++) { ev[tx] = r[2 * tx]; od[tx] = r[2 * tx + 1]; }
          if (Wo % 2) { ev[Tw - 1] = r[Wo - 1]; od[Tw - 1] = 0.0f; }
        }
        float* __restrict m = k.M + o * T + (ty - ty0) * Tw;  // Ŷ[ξ*ms + tx]
        const float *a = ab, *b = ab + Tw, *c = ab + 2 * Tw, *d = ab + 3 * Tw;
#pragma omp simd
        for (int64_t tx = 0; tx < Tw; tx++) {
          // A dY: rows (a, b), (a+c, b+d), (a−c, b−d), (−c, −d); each row (p, q) · Aᵀ -> (p, p+q, p−q, −q).
          const float p[4] = {a[tx], a[tx] + c[tx], a[tx] - c[tx], -c[tx]};
          const float q[4] = {b[tx], b[tx] + d[tx], b[tx] - d[tx], -d[tx]};
          for (int i = 0; i < 4; i++) {
            m[(i * 4 + 0) * ms + tx] = p[i];
            m[(i * 4 + 1) * ms + tx] = p[i] + q[i];
            m[(i * 4 + 2) * ms + tx] = p[i] - q[i];
            m[(i * 4 + 3) * ms + tx] = -q[i];
          }
        }
      }
    for (int64_t i = 0; i < 16; i++)  // dU[ξ] (O, C) += Ŷ[ξ] (O, T) @ V[ξ] (C, T)ᵀ
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, C, T, 1.0f, k.M + i * ms, T, k.V + i * C * T, T, 1.0f,
                  dU + i * O * C, C);
  }
}

// dw (O, C, 3, 3) += Gᵀ dU G for every (o, c), dU (16, O, C).
void winograd_dw_finish(const float* dU, int64_t O, int64_t C, float* dw) {
  for (int64_t p = 0; p < O * C; p++) {
    float u[4][4], t[3][4];
    for (int i = 0; i < 16; i++) u[i / 4][i % 4] = dU[i * O * C + p];
    for (int j = 0; j < 4; j++) {  // Gᵀ u
      t[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
      t[1][j] = 0.5f * (u[1][j] - u[2][j]);
      t[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
    }
    float* g = dw + p * 9;
    for (int i = 0; i < 3; i++) {  // (Gᵀ u) G
      g[i * 3 + 0] += t[i][0] + 0.5f * (t[i][1] + t[i][2]);
      g[i * 3 + 1] += 0.5f * (t[i][1] - t[i][2]);
      g[i * 3 + 2] += 0.5f * (t[i][1] + t[i][2]) + t[i][3];
    }
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

  const bool wino = winograd(s);
  float* U = scratch + l.weights;  // (16, O, C)
  if (wino) winograd_weights(w, s.O, s.C, false, U);
  for_images(image_threads(s), s.N, [&](int t, int64_t n0, int64_t n1) {
    float* work = scratch + t * l.work;  // this thread's column chunk / Winograd buffers
    for (int64_t n = n0; n < n1; n++) {
      float* yn = y + n * s.O * P;  // (O, P)
      const float* xn = x + n * s.C * s.H * s.W;
      for (int64_t o = 0; o < s.O; o++) std::fill(yn + o * P, yn + (o + 1) * P, bias ? bias[o] : 0.0f);
      if (wino) winograd_image(xn, U, s, work, yn);
      else conv_rows(xn, w, s, 1.0f, work, yn);
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
  const ConvShape st = grad_input_shape(s);     // dy (N, O, Ho, Wo) ⊛ flipped (C, O, kh, kw) -> dx (N, C, H, W)
  const bool dx_wino = as_conv && winograd(st), dw_wino = dw && winograd(s);
  float* flipped = scratch + l.weights;         // Winograd U (16, C, O), or the flipped kernel (C, O, kh, kw)
  if (dx_wino) winograd_weights(w, O, s.C, true, flipped);
  else if (as_conv)
    for (int64_t o = 0; o < O; o++)
      for (int64_t c = 0; c < s.C; c++)
        for (int64_t ki = 0; ki < s.kh; ki++)
          for (int64_t kj = 0; kj < s.kw; kj++)
            flipped[((c * O + o) * s.kh + ki) * s.kw + kj] =
                w[((o * s.C + c) * s.kh + s.kh - 1 - ki) * s.kw + s.kw - 1 - kj];
  // dW partials: per thread (16, O, C) in the Winograd domain, else per extra thread (O, CK).
  float* dw_part = scratch + l.dw_part;
  const int64_t part = dw_wino ? 16 * O * s.C : O * CK;
  const int64_t parts = dw_wino ? T : T - 1;
  if (dw) std::fill(dw_part, dw_part + parts * part, 0.0f);
  std::vector<double> db_part(db ? T * O : 0);  // (T, O)
  const int64_t R = chunk_rows(s);
  const bool cols_dw = dw && !dw_wino, cols_dx = dx && !as_conv;  // paths that walk im2col chunks

  for_images(T, s.N, [&](int t, int64_t n0, int64_t n1) {
    float* work = scratch + t * l.work;  // column chunk / Winograd buffers
    float* dw_t = dw_wino ? dw_part + t * part : t == 0 ? dw : dw_part + (t - 1) * part;
    for (int64_t n = n0; n < n1; n++) {
      const float* xn = x + n * CHW;      // (C, H, W)
      const float* dyn = dy + n * O * P;  // (O, P)
      float* dxn = dx ? dx + n * CHW : nullptr;
      if (s.pointwise()) {
        if (dw) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, CK, P, 1.0f, dyn, P, xn, P, 1.0f, dw_t, CK);
        if (dx) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CK, P, O, 1.0f, w, CK, dyn, P, 1.0f, dxn, P);
      } else {
        if (dw_wino) winograd_dw_image(xn, dyn, s, work, dw_t);
        for (int64_t oh0 = 0; (cols_dw || cols_dx) && oh0 < s.Ho; oh0 += R) {
          const int64_t oh1 = std::min(oh0 + R, s.Ho), Pc = (oh1 - oh0) * s.Wo;
          const float* dyc = dyn + oh0 * s.Wo;  // (O, Pc), row stride P
          if (cols_dw) {
            im2col(xn, s, oh0, oh1, work);
            // dw (O, CK) += dy_chunk (O, Pc) @ col (CK, Pc)ᵀ
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, O, CK, Pc, 1.0f, dyc, P, work, Pc, 1.0f, dw_t, CK);
          }
          if (cols_dx) {
            // dcol (CK, Pc) = w (O, CK)ᵀ @ dy_chunk (O, Pc), scattered back onto the image
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CK, Pc, O, 1.0f, w, CK, dyc, P, 0.0f, work, Pc);
            col2im_add(work, s, oh0, oh1, dxn);
          }
        }
        if (dx_wino) winograd_image(dyn, flipped, st, work, dxn);
        else if (as_conv) conv_rows(dyn, flipped, st, 1.0f, work, dxn);
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

  if (dw_wino) {
    for (int t = 1; t < T; t++)
      for (int64_t i = 0; i < part; i++) dw_part[i] += dw_part[t * part + i];
    winograd_dw_finish(dw_part, O, s.C, dw);
  } else if (dw) {
    for (int t = 1; t < T; t++)
      for (int64_t i = 0; i < part; i++) dw[i] += dw_part[(t - 1) * part + i];
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
