//===- Gemm.h - Packed, register-blocked matrix multiply ---------*- C++
//-*-===//
//
// The runtime's float32 GEMM, called by compiled code for matmul and
// convolution. Operands are row-major and either may be read transposed in
// place (backward passes need A^T B and A B^T), so no transpose is ever
// materialised. The micro-kernel is compiled once per x86 ISA level (SSE2,
// AVX2+FMA, AVX-512) and chosen for the running CPU.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_GEMM_H
#define KILN_RUNTIME_GEMM_H

#include <cstdint>

namespace kiln {

class ThreadPool;

/// One matrix operand: element (i, j) of op(X) is X[i*ld + j], or X[j*ld + i]
/// if `trans`.
struct GemmOperand {
  const float *data;
  int64_t ld;
  bool trans;
};

/// C[M, N] = op(A)[M, K] · op(B)[K, N], or C += that if `accumulate`. C has
/// row stride ldc. With a pool, rows or columns of C are split across its
/// threads; K never is, so every element is summed in the same order
/// whatever the thread count.
void gemm(int64_t M, int64_t N, int64_t K, GemmOperand A, GemmOperand B,
          float *C, int64_t ldc, bool accumulate, ThreadPool *pool = nullptr);

/// What the GEMM runs on this CPU.
struct GemmInfo {
  const char *isa; ///< "avx512", "avx2" or "sse2"
  int vectorWidth; ///< floats per vector
  int mr, nr;      ///< micro-tile
  /// Runs `iters` iterations of independent vector FMA chains (the CPU's
  /// peak) and returns the floating-point operations done.
  double (*fmaPeakLoop)(int64_t iters);
};
const GemmInfo &gemmInfo();

} // namespace kiln

#endif
