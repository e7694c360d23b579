// Module entry: exports every registered kernel by name. Policy lives in TypeScript, not here.
#include <malloc.h>
#include <cstdlib>
#include <cstring>
#include "common.h"

namespace ctf {
std::vector<std::pair<const char*, KernelFn>>& registry() {
  static std::vector<std::pair<const char*, KernelFn>> kernels;
  return kernels;
}
}  // namespace ctf

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Typed arrays of a training step (activations, gradients: 0.1–10 MB each) are allocated and freed
  // every step. Above glibc's mmap threshold each one is a fresh mmap whose pages fault in on first
  // touch; keeping them on the heap (largest threshold glibc allows, no trimming) reuses warm pages.
  // CTFGEN_MALLOPT=0 keeps glibc's defaults (for measuring the difference).
  const char* opt = std::getenv("CTFGEN_MALLOPT");
  if (opt == nullptr || std::strcmp(opt, "0") != 0) {
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);
  }
  for (auto& [name, fn] : ctf::registry()) exports.Set(name, Napi::Function::New(env, fn, name));
  return exports;
}

NODE_API_MODULE(ctfgen_native, Init)
