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
  if ((int64_t)ctf::len(info, 0) < n || (int64_t)ctf::len(info, 1) < n) ctf::fail(info, "ropeApply: x/out smaller than B·T·H·hd");
  if ((int64_t)ctf::len(info, 2) < T * half || (int64_t)ctf::len(info, 3) < T * half) ctf::fail(info, "ropeApply: tables smaller than (T, hd/2)");
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
