// Rotary position embedding over interleaved pairs (x[2j], x[2j+1]) of each head, LlamaGen style.
// The angle tables are built in TypeScript (src/engine/ops/rope.ts); this file only rotates.
#include "common.h"

// x (B, T, H, hd), cos/sin (T, hd/2) -> out (B, T, H, hd).
// inverse rotates by the negative angle (the backward); accumulate adds into out instead of writing.
// args: x, out, cos, sin, B, T, H, hd, inverse, accumulate
CTF_KERNEL(ropeApply) {
  const float* x = ctf::f32(info, 0, "x");
  float* out = ctf::f32(info, 1, "out");
  const float* cos = ctf::f32(info, 2, "cos");
  const float* sin = ctf::f32(info, 3, "sin");
  int64_t B = ctf::integer(info, 4, "B"), T = ctf::integer(info, 5, "T"), H = ctf::integer(info, 6, "H"),
          hd = ctf::integer(info, 7, "hd");
  bool inverse = info[8].ToBoolean(), accumulate = info[9].ToBoolean();
  const int64_t half = hd / 2, n = B * T * H * hd;
  if (hd % 2 != 0) ctf::fail(info, "ropeApply: head dim must be even");
  if ((int64_t)ctf::len(info, 0) < n || (int64_t)ctf::len(info, 1) < n)
    ctf::fail(info, "ropeApply: x/out smaller than B·T·H·hd");
  if ((int64_t)ctf::len(info, 2) < T * half || (int64_t)ctf::len(info, 3) < T * half)
    ctf::fail(info, "ropeApply: tables smaller than (T, hd/2)");
  const float sign = inverse ? -1.0f : 1.0f;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++) {
      const float* c = cos + t * half;
      const float* s = sin + t * half;
      for (int64_t h = 0; h < H; h++) {
        int64_t base = ((b * T + t) * H + h) * hd;
        const float* xi = x + base;
        float* yo = out + base;
        if (accumulate) {
#pragma omp simd
          for (int64_t j = 0; j < half; j++) {
            float x0 = xi[2 * j], x1 = xi[2 * j + 1], sj = sign * s[j];
            yo[2 * j] += x0 * c[j] - x1 * sj;
            yo[2 * j + 1] += x1 * c[j] + x0 * sj;
          }
        } else {
#pragma omp simd
          for (int64_t j = 0; j < half; j++) {
            float x0 = xi[2 * j], x1 = xi[2 * j + 1], sj = sign * s[j];
            yo[2 * j] = x0 * c[j] - x1 * sj;
            yo[2 * j + 1] = x1 * c[j] + x0 * sj;
          }
        }
      }
    }
  return info.Env().Undefined();
}

namespace ctf {

// Rows n0 ≤ n < n1 of ropeQkvInPlace below (position t = n mod T); also the fused inference forward's.
void rope_qkv_rows(float* qkv, const float* cos, const float* sin, int64_t n0, int64_t n1, int64_t T, int64_t H,
                   int64_t hd, float scale, bool inverse) {
  const int64_t half = hd / 2, D = H * hd;
  const float sign = inverse ? -1.0f : 1.0f;
  for (int64_t n = n0; n < n1; n++) {
    float* row = qkv + n * 3 * D;
    if (!cos) {
#pragma omp simd
      for (int64_t i = 0; i < D; i++) row[i] *= scale;
      continue;
    }
    const float* c = cos + (n % T) * half;
    const float* s = sin + (n % T) * half;
    for (int64_t part = 0; part < 2; part++) {
      const float f = part == 0 ? scale : 1.0f;
      for (int64_t h = 0; h < H; h++) {
        float* x = row + part * D + h * hd;
#pragma omp simd
        for (int64_t j = 0; j < half; j++) {
          const float x0 = x[2 * j], x1 = x[2 * j + 1], sj = sign * s[j];
          x[2 * j] = f * (x0 * c[j] - x1 * sj);
          x[2 * j + 1] = f * (x1 * c[j] + x0 * sj);
        }
      }
    }
  }
}

}  // namespace ctf

// In place on a fused projection qkv (N = B·T rows of 3·H·hd, columns q | k | v): the q part of row n
// becomes scale · rope_t(q), the k part rope_t(k), with t = n mod T and tables (T, hd/2) (empty: no
// rotation, q only scaled). inverse applies the transpose instead, scale · rope_t⁻¹ on q and rope_t⁻¹
// on k: the backward of the same map, on the gradient.
// args: qkv, cos, sin, N, T, H, hd, scale, inverse
CTF_KERNEL(ropeQkvInPlace) {
  float* qkv = ctf::f32(info, 0, "qkv");
  const float* cos = ctf::len(info, 1) ? ctf::f32(info, 1, "cos") : nullptr;
  const float* sin = ctf::len(info, 2) ? ctf::f32(info, 2, "sin") : nullptr;
  const int64_t N = ctf::integer(info, 3, "N"), T = ctf::integer(info, 4, "T"), H = ctf::integer(info, 5, "H"),
                hd = ctf::integer(info, 6, "hd");
  const float scale = (float)ctf::number(info, 7, "scale");
  const bool inverse = info[8].ToBoolean();
  const int64_t half = hd / 2, D = H * hd;
  if (hd % 2 != 0 || T < 1 || N % T != 0)
    ctf::fail(info, "ropeQkvInPlace: head dim must be even and rows a multiple of T");
  if ((int64_t)ctf::len(info, 0) < N * 3 * D) ctf::fail(info, "ropeQkvInPlace: qkv smaller than (N, 3·H·hd)");
  if ((cos == nullptr) != (sin == nullptr) ||
      (cos && ((int64_t)ctf::len(info, 1) < T * half || (int64_t)ctf::len(info, 2) < T * half)))
    ctf::fail(info, "ropeQkvInPlace: tables must both be (T, hd/2) or both empty");
  ctf::rope_qkv_rows(qkv, cos, sin, 0, N, T, H, hd, scale, inverse);
  return info.Env().Undefined();
}
