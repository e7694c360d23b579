// The MPI layer's native half (Open MPI through its C API): init/finalize, rank/size, and the few collectives
// src/parallel/mpi.ts needs, each on memory JS owns (no copies but the gathered result). Built only where
// `pkg-config ompi-c` succeeds (binding.gyp's ctfgen_mpi target); loaded only when the environment says mpirun
// started this process, so a machine without MPI never sees this file.
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>
#include <dlfcn.h>
#include <napi.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

bool initialized = false, finalized = false;

void check(const Napi::Env& env, int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Napi::Error::New(env, std::string("MPI ") + what + ": " + std::string(text, len));
}

// MPI counts are int: f(first, count) over [0, n) in slices of at most INT_MAX elements.
template <class F>
void inSlices(size_t n, F f) {
  for (size_t first = 0; first < n; first += INT_MAX) f(first, static_cast<int>(std::min<size_t>(INT_MAX, n - first)));
}

void needInit(const Napi::Env& env) {
  if (!initialized || finalized) throw Napi::Error::New(env, "MPI is not initialised (call init() first, once)");
}

// Node loads addons with RTLD_LOCAL, so libmpi's symbols stay hidden from the plugins (mca_*.so) Open MPI dlopens
// during MPI_Init, and they fail to resolve. Re-opening libmpi (found through one of its own symbols) with
// RTLD_GLOBAL promotes its symbols before MPI_Init.
void promoteLibmpi() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init), &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

// init() -> { rank, size, version }; MPI_ERRORS_RETURN on the world, so a failed call becomes a JS exception.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (initialized) throw Napi::Error::New(env, "MPI init() called twice");
  promoteLibmpi();
  check(env, MPI_Init(nullptr, nullptr), "MPI_Init");
  initialized = true;
  check(env, MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  int rank = 0, size = 0, len = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  MPI_Get_library_version(version, &len);
  Napi::Object r = Napi::Object::New(env);
  r.Set("rank", rank);
  r.Set("size", size);
  r.Set("version", std::string(version, len));
  return r;
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  if (initialized && !finalized) {
    finalized = true;
    MPI_Finalize();
  }
  return info.Env().Undefined();
}

// abort(message, code): message to stderr (unbuffered, before Open MPI's own notice), then the whole job ends.
Napi::Value Abort(const Napi::CallbackInfo& info) {
  std::string message = info[0].As<Napi::String>().Utf8Value();
  int code = info[1].As<Napi::Number>().Int32Value();
  if (!message.empty()) {
    fputs(message.c_str(), stderr);
    fputc('\n', stderr);
    fflush(stderr);
  }
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  _exit(code);  // not initialised: mpirun sees a rank that failed and ends the job
}

// allreduceSum(Float32Array): every element summed over the ranks, in place (MPI_IN_PLACE).
Napi::Value AllreduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  needInit(env);
  auto a = info[0].As<Napi::TypedArrayOf<float>>();
  inSlices(a.ElementLength(), [&](size_t first, int count) {
    check(env, MPI_Allreduce(MPI_IN_PLACE, a.Data() + first, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
  });
  return a;
}

// broadcast(Uint8Array view, root): root's bytes into every rank's buffer of the same length, in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  needInit(env);
  auto a = info[0].As<Napi::TypedArrayOf<uint8_t>>();
  int root = info[1].As<Napi::Number>().Int32Value();
  inSlices(a.ElementLength(), [&](size_t first, int count) {
    check(env, MPI_Bcast(a.Data() + first, count, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  });
  return a;
}

// gatherBytes(Uint8Array, root) -> on root an Array of one Uint8Array per rank (in rank order), elsewhere null.
// Lengths first (MPI_Gather), then the bytes into one buffer (MPI_Gatherv, int displacements: < 2 GiB in all).
Napi::Value GatherBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  needInit(env);
  auto a = info[0].As<Napi::TypedArrayOf<uint8_t>>();
  int root = info[1].As<Napi::Number>().Int32Value();
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long long mine = static_cast<long long>(a.ElementLength());
  std::vector<long long> lengths(rank == root ? size : 0);
  check(env, MPI_Gather(&mine, 1, MPI_LONG_LONG, lengths.data(), 1, MPI_LONG_LONG, root, MPI_COMM_WORLD), "MPI_Gather");
  // Every rank must take part in the Gatherv, so a length over the limit is reported by all of them alike.
  std::vector<int> counts(size), displs(size);
  long long total = 0;
  bool fits = mine <= INT_MAX;
  if (rank == root)
    for (int r = 0; r < size; r++) {
      counts[r] = static_cast<int>(std::min<long long>(lengths[r], INT_MAX));
      displs[r] = static_cast<int>(std::min<long long>(total, INT_MAX));
      total += lengths[r];
      fits = fits && lengths[r] <= INT_MAX && total <= INT_MAX;
    }
  int ok = fits ? 1 : 0, allOk = 0;
  check(env, MPI_Allreduce(&ok, &allOk, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
  if (!allOk) throw Napi::RangeError::New(env, "gatherBytes: more than 2 GiB in one gather; gather in parts");
  Napi::ArrayBuffer all = Napi::ArrayBuffer::New(env, rank == root ? static_cast<size_t>(total) : 0);
  check(env, MPI_Gatherv(a.Data(), static_cast<int>(mine), MPI_BYTE, rank == root ? all.Data() : nullptr, counts.data(),
                         displs.data(), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Gatherv");
  if (rank != root) return env.Null();
  Napi::Array parts = Napi::Array::New(env, size);
  for (int r = 0; r < size; r++)
    parts.Set(r, Napi::Uint8Array::New(env, static_cast<size_t>(lengths[r]), all, static_cast<size_t>(displs[r])));
  return parts;
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  needInit(env);
  check(env, MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  return env.Undefined();
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("allreduceSum", Napi::Function::New(env, AllreduceSum));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("gatherBytes", Napi::Function::New(env, GatherBytes));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  return exports;
}

}  // namespace

NODE_API_MODULE(ctfgen_mpi, Module)
