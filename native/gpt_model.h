// A GPT bound once to native code (src/models/gpt-native.ts, docs/gpt-native.md), for inference. Not an engine
// kernel: the model layer's native half. gpt_bind.cc builds the handles, gpt_infer.cc runs them.
//
// GptModel points into the JS-owned Float32Arrays of Gpt.namedWeights and the RoPE table, holding a napi
// reference to each so they stay alive as long as the handle. It reads those buffers live: training (AdamW) and
// loading (loadGptWeights) write into the same arrays in place, so a bound handle always sees the current weights.
// Every shape was checked against the config at bind time; the kernels trust them.
#pragma once
#include <cstdint>
#include <vector>
#include "common.h"

namespace ctf {

// One pre-norm block: attnNorm (D), wqkv (3D, D) rows q|k|v, wo (D, D), ffnNorm (D), w13 (2·hid, D) rows w1|w3,
// w2 (D, hid).
struct GptBlock {
  const float *attnNorm, *wqkv, *wo, *ffnNorm, *w13, *w2;
};

struct GptModel {
  int64_t layers, D, H, hd, hid;
  int64_t classRows, inVocab, outVocab, fineRows;  // table rows: numClasses + 1, inVocab, outVocab, fineVocab (0: none)
  int64_t ropeRows;                                // positions the RoPE table covers: 1 + grid²
  bool causal;
  float eps;
  const float *cls, *tok, *fine;  // (classRows, D), (inVocab, D), (fineRows, D) or nullptr
  const float *norm, *output;     // (D), (outVocab, D)
  const float *cos, *sin;         // (ropeRows, hd/2)
  std::vector<GptBlock> blocks;
  std::vector<Napi::Reference<Napi::Float32Array>> keep;  // the arrays above, alive while the handle is
  // gptHiddenForward's activations (h, x, qkv, att, ab, g for every row), grown to the largest call and reused:
  // fresh 20–40 MB buffers per stage-2 chunk made V8 collect garbage for "external memory pressure".
  std::vector<float> scratch;
};

// A KV cache of `batch` rows for one GptModel, owning its memory (zeroed at creation).
struct GptCache {
  GptModel* model;
  Napi::Reference<Napi::External<GptModel>> modelRef;  // the model outlives its caches
  int64_t N, maxT, ldk;                                // rows, positions held, maxT rounded up to 16
  std::vector<std::vector<float>> k;                   // per layer, keys transposed: (N, H, hd, ldk)
  std::vector<std::vector<float>> v;                   // per layer, values: (N, H, maxT, hd)
  // The step's residual stream h (N, D) and scratch x (N, D), qkv (N, 3D), att (N, D), ab (N, 2·hid), g (N, hid).
  std::vector<float> h, x, qkv, att, ab, g;
  std::vector<float> attScratch;  // two threads' (hd + ldk) floats for decode_attention_rows
  int64_t bytes() const;
};

// The handle passed as argument i, checked to be a GptModel (a GptCache) by its type tag.
GptModel& gpt_model_arg(const Napi::CallbackInfo& info, size_t i, const char* kernel);
GptCache& gpt_cache_arg(const Napi::CallbackInfo& info, size_t i, const char* kernel);

}  // namespace ctf
