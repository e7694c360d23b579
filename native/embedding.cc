// Embedding lookup: gather rows of a (V, D) table by i32 ids, and the backward scatter-add.
#include <algorithm>
#include "common.h"

// out (N, D) = table[ids] with table (V, D), ids (N). Validates every id before writing anything.
// Returns -1, or the position of the first out-of-range id (TypeScript turns it into a CtfError).
// args: table, V, D, ids, out
CTF_KERNEL(embeddingForward) {
  const float* table = ctf::f32(info, 0, "table");
  int64_t V = ctf::integer(info, 1, "V"), D = ctf::integer(info, 2, "D");
  const int32_t* ids = ctf::i32(info, 3, "ids");
  float* out = ctf::f32(info, 4, "out");
  int64_t N = (int64_t)ctf::len(info, 3);
  if (V < 0 || D < 0 || (int64_t)ctf::len(info, 0) != V * D) ctf::fail(info, "embeddingForward: table is not (V, D)");
  if ((int64_t)ctf::len(info, 4) != N * D) ctf::fail(info, "embeddingForward: out is not (N, D)");
  for (int64_t i = 0; i < N; i++)
    if (ids[i] < 0 || ids[i] >= V) return Napi::Number::New(info.Env(), (double)i);
  for (int64_t i = 0; i < N; i++) {
    const float* row = table + (int64_t)ids[i] * D;  // (D)
    std::copy(row, row + D, out + i * D);
  }
  return Napi::Number::New(info.Env(), -1);
}

// gtable (V, D) += scatter of g (N, D) by ids (N); repeated ids accumulate. args: g, ids, gtable, V, D
CTF_KERNEL(embeddingBackward) {
  const float* g = ctf::f32(info, 0, "g");
  const int32_t* ids = ctf::i32(info, 1, "ids");
  float* gtable = ctf::f32(info, 2, "gtable");
  int64_t V = ctf::integer(info, 3, "V"), D = ctf::integer(info, 4, "D");
  int64_t N = (int64_t)ctf::len(info, 1);
  if (V < 0 || D < 0 || (int64_t)ctf::len(info, 2) != V * D) ctf::fail(info, "embeddingBackward: gtable is not (V, D)");
  if ((int64_t)ctf::len(info, 0) != N * D) ctf::fail(info, "embeddingBackward: g is not (N, D)");
  for (int64_t i = 0; i < N; i++)
    if (ids[i] < 0 || ids[i] >= V) ctf::fail(info, "embeddingBackward: id out of range");
  for (int64_t i = 0; i < N; i++) {
    const float* gr = g + i * D;                     // (D)
    float* tr = gtable + (int64_t)ids[i] * D;        // (D)
#pragma omp simd
    for (int64_t j = 0; j < D; j++) tr[j] += gr[j];
  }
  return info.Env().Undefined();
}
