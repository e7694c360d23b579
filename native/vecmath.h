// Vectorisable math shared by the kernels. libm's expf is a scalar call per element (~10x slower in
// these loops), and GCC will not vectorise a float max reduction without -ffinite-math-only.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace ctf {

// expf over the full float range (Cephes: range reduction by ln 2, degree-6 polynomial, 2^n built from
// exponent bits in two halves so results down to the denormals and up to FLT_MAX are right); max relative
// error ~1e-7. Not fmin/fmax for the clamps: those are libm calls.
inline float exp_vec(float x) {
  constexpr float LO = -103.97f, HI = 88.7228394f;  // exp underflows to 0 below LO, overflows above HI
  float xc = x < LO ? LO : (x > HI ? HI : x);
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t n1 = (int32_t)n >> 1, n2 = (int32_t)n - n1;
  int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  float y = p * s1 * s2;
  return x < LO ? 0.0f : (x > HI ? INFINITY : y);
}

// max of x (V), in 16-lane vector types. NaNs are skipped here (callers that care check for them).
inline float row_max(const float* x, int64_t V) {
  typedef float f32x16 __attribute__((vector_size(64)));
  f32x16 m16;
  for (int k = 0; k < 16; k++) m16[k] = -INFINITY;
  int64_t j = 0;
  for (; j + 16 <= V; j += 16) {
    f32x16 v;
    std::memcpy(&v, x + j, sizeof v);
    m16 = v > m16 ? v : m16;
  }
  float m = -INFINITY;
  for (int k = 0; k < 16; k++) m = m16[k] > m ? m16[k] : m;
  for (; j < V; j++) m = x[j] > m ? x[j] : m;
  return m;
}

}  // namespace ctf
