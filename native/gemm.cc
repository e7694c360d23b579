// Every matrix product in ctfgen goes through OpenBLAS sgemm. Offsets let callers multiply views
// (a slice of a fused qkv buffer, one image of a batch) without copying.
#include <cblas.h>
#include <cmath>
#include <cstring>
#include <thread>
#include "common.h"

namespace {

inline CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

// Checks that A (rows x cols, leading dim ld, optionally transposed) fits in a buffer of n elements.
void check_fits(const Napi::CallbackInfo& info, const char* what, size_t n, int64_t off, int64_t rows, int64_t cols,
                int64_t ld, bool trans, int64_t batch = 1, int64_t stride = 0) {
  int64_t r = trans ? cols : rows, c = trans ? rows : cols;  // stored layout
  if (r == 0 || c == 0) return;
  if (ld < c) ctf::fail(info, std::string("sgemm: leading dimension of ") + what + " smaller than its row length");
  int64_t last = off + (batch - 1) * stride + (r - 1) * ld + c;
  if (off < 0 || last > (int64_t)n)
    ctf::fail(info, std::string("sgemm: ") + what + " view runs past the end of its buffer");
}

// C = alpha op(A) op(B) + beta C, with the rows of C halved between this thread and a helper, each running a
// single-threaded sgemm, when OpenBLAS has two threads and the product is tall enough. For the tall-skinny
// products of the GPT layers that was 1.1–1.6× faster than OpenBLAS's own two-thread split (measured with
// OPENBLAS_THREAD_TIMEOUT=20: M 4160, N 192, K 64: 100 -> 156 GFLOP/s; M 8192, N 128, K 384: 118 -> 132;
// Aᵀ of M 4096, N 128, K 8192: 136 -> 165); for M 8192, N 4096 both gave 140, and short products (M 128,
// N 4096) were faster in OpenBLAS's split, which they keep. Each C element sums over K in the same order either way.
void sgemm_rows2(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int threads = openblas_get_num_threads();
  if (threads < 2 || M < 256 || 2.0 * (double)M * N * K < 8e6) {
    cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int64_t mid = (M / 2 + 15) / 16 * 16;
  openblas_set_num_threads(1);
  std::thread helper([&] {
    cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), M - mid, N, K, alpha, ta ? A + mid : A + mid * lda, lda, B, ldb, beta,
                C + mid * ldc, ldc);
  });
  cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), mid, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  helper.join();
  openblas_set_num_threads(threads);
}

}  // namespace

// C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C; row-major.
// args: transA, transB, M, N, K, alpha, A, offA, lda, B, offB, ldb, beta, C, offC, ldc
CTF_KERNEL(sgemm) {
  bool ta = info[0].ToBoolean(), tb = info[1].ToBoolean();
  int64_t M = ctf::integer(info, 2, "M"), N = ctf::integer(info, 3, "N"), K = ctf::integer(info, 4, "K");
  float alpha = (float)ctf::number(info, 5, "alpha");
  float* A = ctf::f32(info, 6, "A"); int64_t offA = ctf::integer(info, 7, "offA"), lda = ctf::integer(info, 8, "lda");
  float* B = ctf::f32(info, 9, "B"); int64_t offB = ctf::integer(info, 10, "offB"), ldb = ctf::integer(info, 11, "ldb");
  float beta = (float)ctf::number(info, 12, "beta");
  float* C = ctf::f32(info, 13, "C");
  int64_t offC = ctf::integer(info, 14, "offC"), ldc = ctf::integer(info, 15, "ldc");
  check_fits(info, "A", ctf::len(info, 6), offA, M, K, lda, ta);
  check_fits(info, "B", ctf::len(info, 9), offB, K, N, ldb, tb);
  check_fits(info, "C", ctf::len(info, 13), offC, M, N, ldc, false);
  if (M == 0 || N == 0) return info.Env().Undefined();
  sgemm_rows2(ta, tb, M, N, K, alpha, A + offA, lda, B + offB, ldb, beta, C + offC, ldc);
  return info.Env().Undefined();
}

// Batched: for b < batch, C_b = alpha * op(A_b) @ op(B_b) + beta * C_b with element strides per batch.
// args: transA, transB, M, N, K, alpha, A, offA, lda, strideA, B, offB, ldb, strideB, beta, C, offC, ldc, strideC,
// batch
CTF_KERNEL(sgemmBatched) {
  bool ta = info[0].ToBoolean(), tb = info[1].ToBoolean();
  int64_t M = ctf::integer(info, 2, "M"), N = ctf::integer(info, 3, "N"), K = ctf::integer(info, 4, "K");
  float alpha = (float)ctf::number(info, 5, "alpha");
  float* A = ctf::f32(info, 6, "A");
  int64_t offA = ctf::integer(info, 7, "offA"), lda = ctf::integer(info, 8, "lda"),
          sA = ctf::integer(info, 9, "strideA");
  float* B = ctf::f32(info, 10, "B");
  int64_t offB = ctf::integer(info, 11, "offB"), ldb = ctf::integer(info, 12, "ldb"),
          sB = ctf::integer(info, 13, "strideB");
  float beta = (float)ctf::number(info, 14, "beta");
  float* C = ctf::f32(info, 15, "C");
  int64_t offC = ctf::integer(info, 16, "offC"), ldc = ctf::integer(info, 17, "ldc"),
          sC = ctf::integer(info, 18, "strideC");
  int64_t batch = ctf::integer(info, 19, "batch");
  if (batch <= 0 || M == 0 || N == 0) return info.Env().Undefined();
  check_fits(info, "A", ctf::len(info, 6), offA, M, K, lda, ta, batch, sA);
  check_fits(info, "B", ctf::len(info, 10), offB, K, N, ldb, tb, batch, sB);
  check_fits(info, "C", ctf::len(info, 15), offC, M, N, ldc, false, batch, sC);
  for (int64_t b = 0; b < batch; b++)
    cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A + offA + b * sA, lda, B + offB + b * sB, ldb, beta,
                C + offC + b * sC, ldc);
  return info.Env().Undefined();
}

// Compares sgemm with a float64 naive product on a fixed pseudo-random case (all four transpose
// combinations, odd sizes that exercise edge tiles). Returns the largest relative error.
CTF_KERNEL(sgemmSelfCheck) {
  const int M = 37, N = 29, K = 53;
  std::vector<float> A(M * K), B(K * N), C(M * N);
  uint32_t s = 12345;
  auto rnd = [&]() { s = s * 1664525u + 1013904223u; return (float)((s >> 8) * (1.0 / 16777216.0) - 0.5); };
  for (auto& x : A) x = rnd();
  for (auto& x : B) x = rnd();
  double worst = 0;
  for (int t = 0; t < 4; t++) {
    bool ta = t & 1, tb = t & 2;
    // A is interpreted as op(A) stored (M,K) or (K,M); same data, different meaning.
    cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, 1.0f, A.data(), ta ? M : K, B.data(), tb ? K : N, 0.0f,
                C.data(), N);
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        double ref = 0, mag = 0;
        for (int k = 0; k < K; k++) {
          double a = ta ? A[k * M + i] : A[i * K + k], b = tb ? B[j * K + k] : B[k * N + j];
          ref += a * b; mag += std::fabs(a * b);
        }
        double err = std::fabs(C[i * N + j] - ref) / (mag + 1e-30);
        if (!(err <= worst)) worst = std::isnan(err) ? INFINITY : err;
      }
  }
  return Napi::Number::New(info.Env(), worst);
}

CTF_KERNEL(blasInfo) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("corename", openblas_get_corename());
  o.Set("threads", openblas_get_num_threads());
  o.Set("config", openblas_get_config());
  return o;
}

CTF_KERNEL(blasSetThreads) {
  openblas_set_num_threads((int)ctf::integer(info, 0, "threads"));
  return info.Env().Undefined();
}
