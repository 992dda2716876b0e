//===- Gemm.h - Packed, register-blocked matrix multiply ---------*- C++ -*-===//
//
// The runtime's float32 GEMM, called by compiled code for matmul and
// convolution. Operands are row-major and either may be read transposed in
// place (backward passes need A^T B and A B^T), so no transpose is ever
// materialised. This file is the Goto/BLIS macro-kernel: blocking, packing
// B and splitting the work across threads. The micro-kernels that do the
// arithmetic are not here: the compiler generates them into each module for
// the CPU it compiles for (codegen/GemmKernels.cpp) and passes them in.
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

/// C[0:R, 0:nr] = a · b (or C += a · b unless `overwrite`), where a is
/// R x kc with element (r, k) at a[k*ks + r] (a packed panel, or A^T read in
/// place) and b is a packed kc x NR strip (k-major, 64-byte aligned). R is
/// fixed per kernel, kc >= 1 and 1 <= nr <= NR.
using GemmMicroKernel = void (*)(int64_t kc, const float *a, int64_t ks,
                                 const float *b, float *c, int64_t ldc,
                                 int64_t nr, int32_t overwrite);

/// A micro-tile of MR x NR and its kernels: fns[R - 1] handles R rows.
struct GemmKernels {
  const GemmMicroKernel *fns;
  int64_t mr, nr;
};

/// The largest NR the packing buffers allow.
inline constexpr int64_t kGemmMaxNR = 64;

/// C[M, N] = op(A)[M, K] · op(B)[K, N], or C += that if `accumulate`. C has
/// row stride ldc. With a pool, rows or columns of C are split across its
/// threads in whole micro-tiles; K never is, so every element is summed in
/// the same order whatever the thread count.
void gemm(int64_t M, int64_t N, int64_t K, GemmOperand A, GemmOperand B,
          float *C, int64_t ldc, bool accumulate, const GemmKernels &kernels,
          ThreadPool *pool = nullptr);

} // namespace kiln

#endif
