//===- Gemm.cpp - Choosing the GEMM kernel and splitting it over threads --===//

#include "runtime/Gemm.h"
#include "runtime/ThreadPool.h"
#include <algorithm>

using namespace kiln;

// One set per ISA build of GemmKernel.cpp.
#define KILN_DECLARE_ISA(isa)                                                  \
  namespace kiln::isa {                                                        \
  void gemmBlock(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t K,    \
                 const GemmOperand &A, const GemmOperand &B, float *C,         \
                 int64_t ldc, bool accumulate);                                \
  double fmaPeakLoop(int64_t iters);                                           \
  extern const int kVectorWidth, kMR, kNR;                                     \
  }
KILN_DECLARE_ISA(sse2)
KILN_DECLARE_ISA(avx2)
KILN_DECLARE_ISA(avx512)
#undef KILN_DECLARE_ISA

namespace {

using BlockFn = void (*)(int64_t, int64_t, int64_t, int64_t, int64_t,
                         const GemmOperand &, const GemmOperand &, float *,
                         int64_t, bool);

struct Kernel {
  GemmInfo info;
  BlockFn block;
};

Kernel chooseKernel() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f"))
    return {{"avx512", avx512::kVectorWidth, avx512::kMR, avx512::kNR,
             &avx512::fmaPeakLoop},
            &avx512::gemmBlock};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {
        {"avx2", avx2::kVectorWidth, avx2::kMR, avx2::kNR, &avx2::fmaPeakLoop},
        &avx2::gemmBlock};
  return {
      {"sse2", sse2::kVectorWidth, sse2::kMR, sse2::kNR, &sse2::fmaPeakLoop},
      &sse2::gemmBlock};
}

const Kernel &kernel() {
  static const Kernel k = chooseKernel();
  return k;
}

} // namespace

const GemmInfo &kiln::gemmInfo() { return kernel().info; }

void kiln::gemm(int64_t M, int64_t N, int64_t K, GemmOperand A, GemmOperand B,
                float *C, int64_t ldc, bool accumulate, ThreadPool *pool) {
  if (M <= 0 || N <= 0)
    return;
  const Kernel &k = kernel();
  // Below ~2 MFLOP a second thread costs more than it saves.
  bool parallel = pool && pool->size() > 1 && double(M) * N * K >= 1e6;
  if (!parallel) {
    k.block(0, M, 0, N, K, A, B, C, ldc, accumulate);
    return;
  }
  // Split the longer side of C, in whole micro-tiles.
  if (N >= M) {
    int64_t tiles = (N + k.info.nr - 1) / k.info.nr;
    pool->parallelFor(tiles, 1, [&](int64_t t0, int64_t t1) {
      k.block(0, M, t0 * k.info.nr, std::min(N, t1 * k.info.nr), K, A, B, C,
              ldc, accumulate);
    });
  } else {
    int64_t tiles = (M + k.info.mr - 1) / k.info.mr;
    pool->parallelFor(tiles, 1, [&](int64_t t0, int64_t t1) {
      k.block(t0 * k.info.mr, std::min(M, t1 * k.info.mr), 0, N, K, A, B, C,
              ldc, accumulate);
    });
  }
}
