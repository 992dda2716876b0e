//===- Runtime.h - What compiled code calls back into ------------*- C++
//-*-===//
//
// The compiled step calls a handful of C functions: the thread pool's
// parallel_for, the GEMM, error reporting for out-of-range ids and labels,
// and dropout's per-op key. They receive the RuntimeContext the caller
// passed to the entry point.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_RUNTIME_H
#define KILN_CODEGEN_RUNTIME_H

#include "runtime/Gemm.h"
#include <atomic>
#include <cstdint>

namespace kiln {

class ThreadPool;

inline constexpr const char *kRtParallelFor = "kiln_rt_parallel_for";
inline constexpr const char *kRtMatMul = "kiln_rt_matmul";
inline constexpr const char *kRtFail = "kiln_rt_fail";
inline constexpr const char *kRtDropoutKey = "kiln_rt_dropout_key";

struct RuntimeContext {
  ThreadPool *pool = nullptr;
  uint64_t seed = 0, step = 0; ///< dropout's randomness
  /// The first failure: the node that met a bad value, and the value.
  std::atomic<int64_t> failedNode{-1};
  int64_t failedValue = 0;
};

/// A kernel task: runs iterations [begin, end).
using KernelTask = void (*)(void **bufs, RuntimeContext *rt, int64_t begin,
                            int64_t end);
/// A GEMM epilogue task: runs on block C[i0:i1, j0:j1], whose element
/// (i0, j0) is at c, its rows ldc apart.
using EpilogueTask = void (*)(void **bufs, RuntimeContext *rt, int64_t i0,
                              int64_t i1, int64_t j0, int64_t j1,
                              const float *c, int64_t ldc);

extern "C" {
void kiln_rt_parallel_for(RuntimeContext *rt, KernelTask task, void **bufs,
                          int64_t count, int64_t grain);
/// C[b] = op(A[b]) . op(B[b]) for b < batch, with flags bit 0: A stored
/// transposed ([K, M]), bit 1: B stored transposed ([N, K]). Strides are
/// in elements between consecutive batches (0: shared). `kernels` is the
/// module's table of micro-kernels (kiln::GemmKernels) for an mr x nr tile.
/// If `epilogue` is not null, it is called as
/// epilogue(epilogueArgs, rt, b*m + i0, b*m + i1, j0, j1, c, ldc) on each
/// finished block C[b][i0:i1, j0:j1]: the rows of the batch are numbered in
/// turn. c may then be null: the product is for the epilogue only, and
/// kiln::gemm keeps its blocks in each thread's buffers.
/// If `prepare` is not null, it makes each product's B just before the
/// product, as prepare(prepareArgs, rt, b*prepareRows, (b+1)*prepareRows)
/// (split over the threads, prepareGrain rows at least, when the product
/// is): a convolution's im2col columns of one image, so that the GEMM reads
/// them from cache rather than the whole batch's from memory.
void kiln_rt_matmul(RuntimeContext *rt, const float *a, const float *b,
                    float *c, int64_t batch, int64_t m, int64_t n, int64_t k,
                    int32_t flags, int64_t strideA, int64_t strideB,
                    int64_t strideC, const GemmMicroKernel *kernels, int64_t mr,
                    int64_t nr, EpilogueTask epilogue, void **epilogueArgs,
                    KernelTask prepare, void **prepareArgs, int64_t prepareRows,
                    int64_t prepareGrain);
void kiln_rt_fail(RuntimeContext *rt, int64_t node, int64_t value);
uint64_t kiln_rt_dropout_key(RuntimeContext *rt, int64_t opSeed);
}

} // namespace kiln

#endif
