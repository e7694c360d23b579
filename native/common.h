// Shared helpers for every kernel file: argument unpacking with clear errors and the kernel registry.
// Kernels take JS-owned typed arrays and write into them in place (zero copy); no kernel keeps a pointer
// after it returns (the GPT handles of gpt_model.h are the one exception: they hold napi references).
#pragma once
#include <napi.h>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ctf {

using KernelFn = Napi::Value (*)(const Napi::CallbackInfo&);

// Every .cc file registers its kernels at load time; addon.cc exports them all by name.
std::vector<std::pair<const char*, KernelFn>>& registry();
struct Register {
  Register(const char* name, KernelFn fn) { registry().emplace_back(name, fn); }
};

[[noreturn]] inline void fail(const Napi::CallbackInfo& info, const std::string& msg) {
  throw Napi::TypeError::New(info.Env(), msg);
}

inline float* f32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    fail(info, std::string("native kernel: argument ") + std::to_string(i) + " (" + what + ") must be a Float32Array");
  return info[i].As<Napi::Float32Array>().Data();
}

// An optional Float32Array argument: null or undefined gives nullptr.
inline float* f32_or_null(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() > i && (info[i].IsNull() || info[i].IsUndefined())) return nullptr;
  return f32(info, i, what);
}

inline int32_t* i32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    fail(info, std::string("native kernel: argument ") + std::to_string(i) + " (" + what + ") must be an Int32Array");
  return info[i].As<Napi::Int32Array>().Data();
}

// Length (elements) of the typed array at i, for bounds checks in kernels.
inline size_t len(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::TypedArray>().ElementLength();
}

inline int64_t integer(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber())
    fail(info, std::string("native kernel: argument ") + std::to_string(i) + " (" + what + ") must be a number");
  return info[i].As<Napi::Number>().Int64Value();
}

inline double number(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber())
    fail(info, std::string("native kernel: argument ") + std::to_string(i) + " (" + what + ") must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

// An optional trailing element offset (a count ≥ 0, 0 when absent): a kernel working on rows [first, …) of a
// batch draws the per-element randomness of those rows, uniform_at(seed, offset + i), so a shard of the batch
// gets the mask bits the whole batch would.
inline uint64_t offset_or_zero(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return 0;
  const int64_t v = integer(info, i, "element offset");
  if (v < 0) fail(info, "native kernel: element offset " + std::to_string(v) + " must be ≥ 0");
  return (uint64_t)v;
}

// Declares and registers a kernel callable from JS as native.NAME(...).
#define CTF_KERNEL(NAME)                                            \
  static Napi::Value NAME(const Napi::CallbackInfo& info);          \
  static ::ctf::Register ctf_register_##NAME(#NAME, NAME);          \
  static Napi::Value NAME(const Napi::CallbackInfo& info)

}  // namespace ctf

namespace ctf {
// Same hash as mix32 in src/engine/rng.ts: kernels derive per-element randomness from (seed, index).
inline uint32_t mix32(uint32_t x) {
  x = (x ^ (x >> 16)) * 0x7feb352du;
  x = (x ^ (x >> 15)) * 0x846ca68bu;
  return x ^ (x >> 16);
}
// Uniform [0,1) for element i of the stream seeded by seed.
inline float uniform_at(uint32_t seed, uint64_t i) {
  uint32_t h = mix32(mix32((uint32_t)i ^ seed) + (uint32_t)(i >> 32) * 0x9e3779b9u + 0x85ebca6bu);
  return (h >> 8) * (1.0f / 16777216.0f);
}
}  // namespace ctf
