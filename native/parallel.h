// Two-way row parallelism shared by the elementwise-style kernels (norms, SwiGLU, dropout): the machine
// has two cores, and OpenBLAS keeps its own threads for the GEMMs.
#pragma once
#include <cstdint>
#include <thread>

extern "C" int openblas_get_num_threads(void);

namespace ctf {

// The engine's thread budget follows OpenBLAS's (OPENBLAS_NUM_THREADS=1 makes the whole process single-threaded,
// e.g. to run two trainings side by side on the two cores).
inline bool two_threads() { return openblas_get_num_threads() >= 2; }

// Runs body(lo, hi) over [0, n) on the calling thread and one helper when the work (elems elements)
// pays for starting a thread (~50 µs) and the process may use two threads, else on the caller alone. Halves are
// split at a multiple of 16.
template <class F>
void split2(int64_t n, int64_t elems, F body) {
  if (elems < (1 << 18) || n < 32 || !two_threads()) {
    body(int64_t(0), n);
    return;
  }
  const int64_t mid = (n / 2 + 15) / 16 * 16;
  std::thread helper([&] { body(mid, n); });
  body(int64_t(0), mid);
  helper.join();
}

}  // namespace ctf
