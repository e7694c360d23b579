// OpenBLAS's pthread workers keep spinning (a sched_yield loop) for 2^28 cycles, ~0.1 s, after every threaded
// GEMM before they sleep. Our own two-thread kernels (convolution, the decode step, norms) run between GEMMs and
// lost one of the two cores to that spinning: the tokenizer decode right after stage 2 took 88 ms instead of 57,
// and `ctfgen bench sample` gave CTF 1.14x the baseline instead of 1.2x. 2^20 cycles (~0.4 ms) still bridges the
// gaps between the GEMMs of one forward pass.
//
// OpenBLAS reads OPENBLAS_THREAD_TIMEOUT (a power of two of cycles) once, when it is loaded, so this must run
// before the addon loads (src/engine/native.ts) and before a benchmark spawns its peers (src/bench/peer.ts), which
// then run under the same setting. A value set by the user wins.
export const DEFAULT_BLAS_THREAD_TIMEOUT = '20';

/** Sets OPENBLAS_THREAD_TIMEOUT in this process's environment unless the user did; returns the value in force. */
export function applyBlasThreadTimeout(): string {
  return (process.env['OPENBLAS_THREAD_TIMEOUT'] ??= DEFAULT_BLAS_THREAD_TIMEOUT);
}
