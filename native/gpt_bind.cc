// Binding a GPT's weights once (gptBind) and making KV caches for it (gptCacheNew); see gpt_model.h.
// Weights are found by their checkpoint names, so the order of the list does not matter and a tensor bound
// under the wrong name fails its shape check here instead of corrupting memory inside a kernel.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include "gpt_model.h"

namespace {

// Random 128-bit tags: an External is only ever read as the struct it was made as.
constexpr napi_type_tag kModelTag = {0x6a1f0c3e9b2d4f81ULL, 0x93c5e7a20d4b6f18ULL};
constexpr napi_type_tag kCacheTag = {0x2f7d9a4c1e6b8035ULL, 0x5c0e3b9f7a2d4168ULL};

[[noreturn]] void bind_fail(const Napi::CallbackInfo& info, const std::string& msg) {
  ctf::fail(info, "gpt bind: " + msg);
}

int64_t int_prop(const Napi::CallbackInfo& info, Napi::Object o, const char* key, int64_t lo) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() != (double)v.As<Napi::Number>().Int64Value() ||
      v.As<Napi::Number>().Int64Value() < lo)
    bind_fail(info, std::string("\"") + key + "\" must be an integer ≥ " + std::to_string(lo));
  return v.As<Napi::Number>().Int64Value();
}

Napi::Float32Array f32_prop(const Napi::CallbackInfo& info, Napi::Object o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    bind_fail(info, what + " must be a Float32Array");
  return v.As<Napi::Float32Array>();
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// What a weight must be: its shape, spelled with the config's names for the error, and where its pointer goes.
struct Expected {
  std::vector<int64_t> shape;
  std::string spelled;
  const float** slot;
  bool seen = false;
};

}  // namespace

namespace ctf {

GptModel& gpt_model_arg(const Napi::CallbackInfo& info, size_t i, const char* kernel) {
  if (info.Length() <= i || !info[i].IsExternal() || !info[i].As<Napi::External<GptModel>>().CheckTypeTag(&kModelTag))
    fail(info, std::string(kernel) + ": argument " + std::to_string(i) + " must be a GPT handle from gptBind");
  return *info[i].As<Napi::External<GptModel>>().Data();
}

GptCache& gpt_cache_arg(const Napi::CallbackInfo& info, size_t i, const char* kernel) {
  if (info.Length() <= i || !info[i].IsExternal() || !info[i].As<Napi::External<GptCache>>().CheckTypeTag(&kCacheTag))
    fail(info, std::string(kernel) + ": argument " + std::to_string(i) + " must be a KV cache from gptCacheNew");
  return *info[i].As<Napi::External<GptCache>>().Data();
}

int64_t GptCache::bytes() const {
  int64_t n = (int64_t)(h.size() + x.size() + qkv.size() + att.size() + ab.size() + g.size() + attScratch.size());
  for (const auto& a : k) n += (int64_t)a.size();
  for (const auto& a : v) n += (int64_t)a.size();
  return 4 * n;
}

}  // namespace ctf

// spec: {layers, dim, heads, hidden, numClasses, inVocab, outVocab, fineVocab, causal, normEps,
//        ropeCos, ropeSin ((ropeRows, hd/2) each), ropeRows, weights: [{name, shape, data: Float32Array}]}
// -> a GPT handle. Every weight the config implies must be there under its checkpoint name with exactly its
// shape, and nothing else may be.
CTF_KERNEL(gptBind) {
  if (info.Length() < 1 || !info[0].IsObject()) bind_fail(info, "expected one spec object");
  Napi::Object spec = info[0].As<Napi::Object>();
  auto m = std::make_unique<ctf::GptModel>();
  m->layers = int_prop(info, spec, "layers", 1);
  m->D = int_prop(info, spec, "dim", 1);
  m->H = int_prop(info, spec, "heads", 1);
  m->hid = int_prop(info, spec, "hidden", 1);
  m->classRows = int_prop(info, spec, "numClasses", 1) + 1;
  m->inVocab = int_prop(info, spec, "inVocab", 1);
  m->outVocab = int_prop(info, spec, "outVocab", 1);
  m->fineRows = int_prop(info, spec, "fineVocab", 0);
  m->ropeRows = int_prop(info, spec, "ropeRows", 1);
  m->causal = spec.Get("causal").ToBoolean();
  m->eps = (float)spec.Get("normEps").ToNumber().DoubleValue();
  if (m->D % m->H != 0 || (m->D / m->H) % 2 != 0)
    bind_fail(info, "dim " + std::to_string(m->D) + " must split into " + std::to_string(m->H) + " heads of even size");
  m->hd = m->D / m->H;
  if (!(m->eps > 0)) bind_fail(info, "normEps must be > 0");
  const int64_t D = m->D, hid = m->hid;
  std::vector<Napi::Float32Array> keep;
  auto rope = [&](const char* key) {
    Napi::Float32Array t = f32_prop(info, spec, key, key);
    if ((int64_t)t.ElementLength() < m->ropeRows * m->hd / 2)
      bind_fail(info, std::string(key) + " holds " + std::to_string(t.ElementLength()) +
                          " values, expected (ropeRows " + std::to_string(m->ropeRows) + ", head dim / 2 " +
                          std::to_string(m->hd / 2) + ")");
    keep.push_back(t);
    return (const float*)t.Data();
  };
  m->cos = rope("ropeCos");
  m->sin = rope("ropeSin");

  std::map<std::string, Expected> expected;
  const std::string dimS = "dim " + std::to_string(D);
  auto want = [&](const std::string& name, std::vector<int64_t> shape, const std::string& spelled, const float** slot) {
    expected[name] = Expected{std::move(shape), spelled, slot};
  };
  want("cls_embedding.embedding_table.weight", {m->classRows, D}, "(numClasses + 1, dim)", &m->cls);
  want("tok_embeddings.weight", {m->inVocab, D}, "(inVocab, dim)", &m->tok);
  m->fine = nullptr;
  if (m->fineRows > 0) want("fine_embeddings.weight", {m->fineRows, D}, "(fineVocab, dim)", &m->fine);
  m->blocks.resize(m->layers);
  for (int64_t l = 0; l < m->layers; l++) {
    const std::string p = "layers." + std::to_string(l) + ".";
    ctf::GptBlock& b = m->blocks[l];
    want(p + "attention_norm.weight", {D}, "(dim)", &b.attnNorm);
    want(p + "attention.wqkv.weight", {3 * D, D}, "(3·dim, dim)", &b.wqkv);
    want(p + "attention.wo.weight", {D, D}, "(dim, dim)", &b.wo);
    want(p + "ffn_norm.weight", {D}, "(dim)", &b.ffnNorm);
    want(p + "feed_forward.w13.weight", {2 * hid, D}, "(2·hidden, dim), hidden " + std::to_string(hid), &b.w13);
    want(p + "feed_forward.w2.weight", {D, hid}, "(dim, hidden), hidden " + std::to_string(hid), &b.w2);
  }
  want("norm.weight", {D}, "(dim)", &m->norm);
  want("output.weight", {m->outVocab, D}, "(outVocab, dim)", &m->output);

  Napi::Value list = spec.Get("weights");
  if (!list.IsArray()) bind_fail(info, "\"weights\" must be an array of {name, shape, data}");
  Napi::Array arr = list.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value e = arr.Get(i);
    if (!e.IsObject() || !e.As<Napi::Object>().Get("name").IsString() || !e.As<Napi::Object>().Get("shape").IsArray())
      bind_fail(info, "weights[" + std::to_string(i) + "] must be {name, shape, data}");
    Napi::Object w = e.As<Napi::Object>();
    const std::string name = w.Get("name").As<Napi::String>().Utf8Value();
    auto it = expected.find(name);
    if (it == expected.end())
      bind_fail(info, "weight \"" + name + "\" is not part of a GPT of " + std::to_string(m->layers) + " layers" +
                          (m->fineRows ? "" : " without a fine-token table"));
    if (it->second.seen) bind_fail(info, "weight \"" + name + "\" is listed twice");
    Napi::Array shapeArr = w.Get("shape").As<Napi::Array>();
    std::vector<int64_t> shape(shapeArr.Length());
    for (uint32_t d = 0; d < shapeArr.Length(); d++) shape[d] = shapeArr.Get(d).ToNumber().Int64Value();
    if (shape != it->second.shape)
      bind_fail(info, "weight \"" + name + "\" has shape " + shape_str(shape) + ", expected " +
                          shape_str(it->second.shape) + " = " + it->second.spelled + " for " + dimS +
                          " — is it another weight, or another config's?");
    Napi::Float32Array data = f32_prop(info, w, "data", "weight \"" + name + "\" data");
    int64_t size = 1;
    for (int64_t s : shape) size *= s;
    if ((int64_t)data.ElementLength() != size)
      bind_fail(info, "weight \"" + name + "\" holds " + std::to_string(data.ElementLength()) + " values, its shape " +
                          shape_str(shape) + " needs " + std::to_string(size));
    *it->second.slot = data.Data();
    it->second.seen = true;
    keep.push_back(data);
  }
  for (const auto& [name, e] : expected)
    if (!e.seen) bind_fail(info, "weight \"" + name + "\" " + shape_str(e.shape) + " is missing");
  for (Napi::Float32Array& t : keep) m->keep.push_back(Napi::Persistent(t));

  auto ext = Napi::External<ctf::GptModel>::New(info.Env(), m.release(), [](Napi::Env env, ctf::GptModel* p) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -(int64_t)(4 * p->scratch.size()));
    delete p;
  });
  ext.TypeTag(&kModelTag);
  return ext;
}

// model, batch, maxT -> a zeroed KV cache of batch rows and maxT positions (maxT ≤ the RoPE table's rows).
CTF_KERNEL(gptCacheNew) {
  ctf::GptModel& m = ctf::gpt_model_arg(info, 0, "gptCacheNew");
  const int64_t N = ctf::integer(info, 1, "batch"), maxT = ctf::integer(info, 2, "maxT");
  if (N < 1 || maxT < 1 || maxT > m.ropeRows)
    ctf::fail(info, "gptCacheNew: batch " + std::to_string(N) + " must be ≥ 1 and maxT " + std::to_string(maxT) +
                        " in [1, " + std::to_string(m.ropeRows) + "]");
  auto c = std::make_unique<ctf::GptCache>();
  c->model = &m;
  c->modelRef = Napi::Persistent(info[0].As<Napi::External<ctf::GptModel>>());
  c->N = N;
  c->maxT = maxT;
  c->ldk = (maxT + 15) / 16 * 16;
  const int64_t D = m.D, H = m.H, hd = m.hd;
  for (int64_t l = 0; l < m.layers; l++) {
    c->k.emplace_back(N * H * hd * c->ldk);
    c->v.emplace_back(N * H * maxT * hd);
  }
  c->h.resize(N * D);
  c->x.resize(N * D);
  c->qkv.resize(N * 3 * D);
  c->att.resize(N * D);
  c->ab.resize(N * 2 * m.hid);
  c->g.resize(N * m.hid);
  c->attScratch.resize(2 * (hd + c->ldk));
  const int64_t bytes = c->bytes();
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), bytes);  // V8 then knows what a dropped cache frees
  auto ext = Napi::External<ctf::GptCache>::New(info.Env(), c.release(), [bytes](Napi::Env env, ctf::GptCache* p) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -bytes);
    delete p;
  });
  ext.TypeTag(&kCacheTag);
  return ext;
}
