//===- Gemm.h - Packed, register-blocked matrix multiply ---------*- C++
//-*-===//
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
/// R x kc with element (r, k) at a[k*lda + r] (a packed panel, or A^T read
/// in place) and b is kc x nr; R is fixed per kernel, kc >= 1 and
/// 1 <= nr <= NR. A plain kernel reads b as a packed strip (k-major, row
/// stride NR, 64-byte aligned) and ignores ldb and bpack. A packing kernel
/// reads b as op(B) in place, row stride ldb, and also writes what it reads
/// to bpack as a packed strip, zero-padded to NR columns, for the tiles
/// below it to use: B is packed while the first tile computes, not in a
/// pass of its own.
using GemmMicroKernel = void (*)(int64_t kc, const float *a, int64_t lda,
                                 const float *b, int64_t ldb, float *bpack,
                                 float *c, int64_t ldc, int64_t nr,
                                 int32_t overwrite);

/// A micro-tile of MR x NR and its kernels: the plain kernel for R rows at
/// fns[R - 1], and the packing kernel, for MR rows only, at fns[MR].
struct GemmKernels {
  const GemmMicroKernel *fns;
  int64_t mr, nr;

  GemmMicroKernel plain(int64_t rows) const { return fns[rows - 1]; }
  GemmMicroKernel packing() const { return fns[mr]; }
};

/// Work on C's final values while they are still in cache: the GEMM calls
/// fn(ctx, i0, i1, j0, j1, c, ldc) once for each block C[i0:i1, j0:j1]
/// after its last K block, so that every element is passed exactly once,
/// from the thread that computed it. c points at the block's element
/// (i0, j0), its rows ldc apart. A compiled step's epilogue (bias,
/// activation, an optimizer update) runs there.
struct GemmEpilogue {
  void (*fn)(void *ctx, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
             const float *c, int64_t ldc);
  void *ctx;
};

/// The largest NR the packing buffers allow.
inline constexpr int64_t kGemmMaxNR = 64;
/// The most K one K block holds (KC): a product whose K fits it is finished
/// in one pass over each block of C.
inline constexpr int64_t kGemmKC = 256;

/// C[M, N] = op(A)[M, K] · op(B)[K, N], or C += that if `accumulate`. C has
/// row stride ldc. With a pool, rows or columns of C are split across its
/// threads in whole micro-tiles; K never is, so every element is summed in
/// the same order whatever the thread count. `epilogue`, if given, runs on
/// each block of C as it is finished. C may then be null: the product is
/// for the epilogue only, and each block of it is kept in a buffer of the
/// thread's: an MC x NR tile when K fits one K block (K <= kGemmKC), which
/// stays in cache, so C never reaches memory; else a panel of the thread's
/// rows, up to NC columns wide, which the K blocks accumulate into. Both
/// stay allocated for the thread's later calls.
void gemm(int64_t M, int64_t N, int64_t K, GemmOperand A, GemmOperand B,
          float *C, int64_t ldc, bool accumulate, const GemmKernels &kernels,
          ThreadPool *pool = nullptr, const GemmEpilogue *epilogue = nullptr);

} // namespace kiln

#endif
