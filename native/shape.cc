// Copies that move data between layouts: permute/transpose (a strided gather), the broadcast back of a
// reduction's gradient (the same gather with zero strides), and block copies for slice/concat.
//
// stridedCopy geometry, coalesced in TypeScript (src/engine/ops/shape.ts):
//   geom = [n, d_0 .. d_{n-1}, ss_0 .. ss_{n-1}]
// dst is contiguous with dims d; dst[i] reads src at Σ idx_k * ss_k.
#include <algorithm>
#include "common.h"

namespace {

constexpr int MAX_DIMS = 8;
constexpr int64_t TILE = 16;  // a 16x16 float tile: 16 cache lines read, 16 written

// How a copy combines: a bit-exact move (also used for i32 data viewed as f32), a scaled set, or +=.
enum Mode { MOVE, SCALE, ACCUMULATE };

template <Mode M>
inline void put(float& d, float s, float alpha) {
  if constexpr (M == MOVE) d = s;
  else if constexpr (M == SCALE) d = alpha * s;
  else d += alpha * s;
}

// dst (n) <- src (n, stride s)
template <Mode M>
void row_copy(const float* __restrict src, int64_t s, float* __restrict dst, int64_t n, float alpha) {
  if (s == 1) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) put<M>(dst[j], src[j], alpha);
  } else {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) put<M>(dst[j], src[j * s], alpha);
  }
}

// 2-D transpose block: dst (rows, cols; row stride dr) <- src (rows, cols) read at a + b*sc.
// Tiled so both the strided reads and the contiguous writes stay in cache.
template <Mode M>
void tile_copy(const float* __restrict src, int64_t sc, float* __restrict dst, int64_t dr, int64_t rows,
               int64_t cols, float alpha) {
  for (int64_t a0 = 0; a0 < rows; a0 += TILE)
    for (int64_t b0 = 0; b0 < cols; b0 += TILE) {
      int64_t a1 = std::min(rows, a0 + TILE), b1 = std::min(cols, b0 + TILE);
      for (int64_t a = a0; a < a1; a++)
        for (int64_t b = b0; b < b1; b++) put<M>(dst[a * dr + b], src[a + b * sc], alpha);
    }
}

template <Mode M>
void strided_copy(const float* src, float* dst, int n, const int64_t* d, const int64_t* ss, float alpha) {
  int64_t ds[MAX_DIMS];  // contiguous strides of dst
  ds[n - 1] = 1;
  for (int k = n - 2; k >= 0; k--) ds[k] = ds[k + 1] * d[k + 1];
  int last = n - 1;
  // A transpose: the innermost dst dim is strided in src but some other dim k is contiguous there.
  int k2 = -1;
  if (ss[last] > 1)
    for (int k = last - 1; k >= 0; k--)
      if (ss[k] == 1) { k2 = k; break; }
  // Outer dims: all but the innermost (and but k2 when tiling).
  int outer[MAX_DIMS], no = 0;
  for (int k = 0; k < last; k++)
    if (k != k2) outer[no++] = k;
  int64_t count = 1;
  for (int i = 0; i < no; i++) count *= d[outer[i]];
  int64_t idx[MAX_DIMS] = {0}, so = 0, dof = 0;
  for (int64_t r = 0; r < count; r++) {
    if (k2 >= 0) tile_copy<M>(src + so, ss[last], dst + dof, ds[k2], d[k2], d[last], alpha);
    else row_copy<M>(src + so, ss[last], dst + dof, d[last], alpha);
    for (int i = no - 1; i >= 0; i--) {
      int k = outer[i];
      so += ss[k]; dof += ds[k];
      if (++idx[i] < d[k]) break;
      so -= ss[k] * d[k]; dof -= ds[k] * d[k]; idx[i] = 0;
    }
  }
}

}  // namespace

// dst[i] = alpha * src[off(i)], or += with accumulate; alpha = 1 without accumulate moves bits unchanged.
// args: src, dst (Π d), geom, alpha, accumulate
CTF_KERNEL(stridedCopy) {
  const float* src = ctf::f32(info, 0, "src");
  float* dst = ctf::f32(info, 1, "dst");
  const int32_t* v = ctf::i32(info, 2, "geom");
  size_t lv = ctf::len(info, 2);
  float alpha = (float)ctf::number(info, 3, "alpha");
  bool acc = info.Length() > 4 && info[4].ToBoolean();
  int n = lv > 0 ? v[0] : 0;
  if (n < 1 || n > MAX_DIMS || lv != (size_t)(1 + 2 * n))
    ctf::fail(info, "stridedCopy: geometry must be [n, dims(n), srcStrides(n)] with 1 ≤ n ≤ 8");
  int64_t d[MAX_DIMS], ss[MAX_DIMS];
  double total = 1, extent = 1;  // double: a hostile geometry cannot overflow past the checks
  for (int k = 0; k < n; k++) {
    d[k] = v[1 + k]; ss[k] = v[1 + n + k];
    if (d[k] < 1 || ss[k] < 0) ctf::fail(info, "stridedCopy: bad geometry");
    total *= (double)d[k]; extent += (double)(d[k] - 1) * (double)ss[k];
  }
  if (total != (double)ctf::len(info, 1)) ctf::fail(info, "stridedCopy: dst length does not match the geometry");
  if (extent > (double)ctf::len(info, 0)) ctf::fail(info, "stridedCopy: geometry reads past the end of src");
  if (acc) strided_copy<ACCUMULATE>(src, dst, n, d, ss, alpha);
  else if (alpha == 1.0f) strided_copy<MOVE>(src, dst, n, d, ss, alpha);
  else strided_copy<SCALE>(src, dst, n, d, ss, alpha);
  return info.Env().Undefined();
}

// For r < rows: dst[dstOff + r*dstStride + j] (+)= src[srcOff + r*srcStride + j], j < rowLen.
// Slice is one call (rows = product of the dims before the axis); concat is one call per input.
// Without accumulate it moves bits unchanged, so i32 data viewed as f32 copies exactly.
// args: src, srcOff, srcStride, dst, dstOff, dstStride, rows, rowLen, accumulate
CTF_KERNEL(copyBlocks) {
  const float* src = ctf::f32(info, 0, "src");
  int64_t srcOff = ctf::integer(info, 1, "srcOff"), srcStride = ctf::integer(info, 2, "srcStride");
  float* dst = ctf::f32(info, 3, "dst");
  int64_t dstOff = ctf::integer(info, 4, "dstOff"), dstStride = ctf::integer(info, 5, "dstStride");
  int64_t rows = ctf::integer(info, 6, "rows"), rowLen = ctf::integer(info, 7, "rowLen");
  bool acc = info.Length() > 8 && info[8].ToBoolean();
  if (rows < 0 || rowLen < 0 || srcOff < 0 || dstOff < 0 || srcStride < 0 || dstStride < 0)
    ctf::fail(info, "copyBlocks: negative offset, stride or size");
  if (rows == 0 || rowLen == 0) return info.Env().Undefined();
  // In double: offsets and strides come from JS numbers, their products must not overflow past the check.
  if ((double)srcOff + (double)(rows - 1) * (double)srcStride + (double)rowLen > (double)ctf::len(info, 0))
    ctf::fail(info, "copyBlocks: blocks run past the end of src");
  if ((double)dstOff + (double)(rows - 1) * (double)dstStride + (double)rowLen > (double)ctf::len(info, 3))
    ctf::fail(info, "copyBlocks: blocks run past the end of dst");
  for (int64_t r = 0; r < rows; r++) {
    const float* s = src + srcOff + r * srcStride;  // (rowLen)
    float* t = dst + dstOff + r * dstStride;        // (rowLen)
    if (acc) {
#pragma omp simd
      for (int64_t j = 0; j < rowLen; j++) t[j] += s[j];
    } else {
      std::copy(s, s + rowLen, t);
    }
  }
  return info.Env().Undefined();
}
