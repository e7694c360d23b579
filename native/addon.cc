// Module entry: exports every registered kernel by name. Policy lives in TypeScript, not here.
#include "common.h"

namespace ctf {
std::vector<std::pair<const char*, KernelFn>>& registry() {
  static std::vector<std::pair<const char*, KernelFn>> kernels;
  return kernels;
}
}  // namespace ctf

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (auto& [name, fn] : ctf::registry()) exports.Set(name, Napi::Function::New(env, fn, name));
  return exports;
}

NODE_API_MODULE(ctfgen_native, Init)
