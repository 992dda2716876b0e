//===- Runtime.cpp - What compiled code calls back into -------------------===//

#include "codegen/Runtime.h"
#include "ir/OpRules.h"
#include "passes/PlanMemory.h"
#include "runtime/ThreadPool.h"

using namespace kiln;

static_assert(kGemmKBlock == kGemmKC,
              "the memory plan's K block is the runtime GEMM's");

extern "C" void kiln_rt_parallel_for(RuntimeContext *rt, KernelTask task,
                                     void **bufs, int64_t count,
                                     int64_t grain) {
  if (!rt->pool) {
    task(bufs, rt, 0, count);
    return;
  }
  rt->pool->parallelFor(count, grain, [&](int64_t begin, int64_t end) {
    task(bufs, rt, begin, end);
  });
}

extern "C" void
kiln_rt_matmul(RuntimeContext *rt, const float *a, const float *b, float *c,
               int64_t batch, int64_t m, int64_t n, int64_t k, int32_t flags,
               int64_t strideA, int64_t strideB, int64_t strideC,
               const GemmMicroKernel *kernels, int64_t mr, int64_t nr,
               EpilogueTask epilogue, void **epilogueArgs, KernelTask prepare,
               void **prepareArgs, int64_t prepareRows, int64_t prepareGrain) {
  bool ta = flags & 1, tb = flags & 2;
  GemmKernels kern{kernels, mr, nr};
  // The epilogue of product i sees its rows as i*m + row.
  struct Ctx {
    EpilogueTask task;
    void **args;
    RuntimeContext *rt;
    int64_t row0;
  };
  auto one = [&](int64_t i, ThreadPool *pool) {
    if (prepare) {
      int64_t r0 = i * prepareRows;
      if (pool)
        pool->parallelFor(prepareRows, prepareGrain,
                          [&](int64_t begin, int64_t end) {
                            prepare(prepareArgs, rt, r0 + begin, r0 + end);
                          });
      else
        prepare(prepareArgs, rt, r0, r0 + prepareRows);
    }
    GemmOperand A{a + i * strideA, ta ? m : k, ta};
    GemmOperand B{b + i * strideB, tb ? k : n, tb};
    Ctx ctx{epilogue, epilogueArgs, rt, i * m};
    GemmEpilogue epi{[](void *p, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                        const float *block, int64_t ldc) {
                       auto *x = static_cast<Ctx *>(p);
                       x->task(x->args, x->rt, x->row0 + i0, x->row0 + i1, j0,
                               j1, block, ldc);
                     },
                     &ctx};
    gemm(m, n, k, A, B, c ? c + i * strideC : nullptr, n, false, kern, pool,
         epilogue ? &epi : nullptr);
  };
  // Many small products: one per thread. Few large ones: split each.
  bool perBatch =
      rt->pool && batch >= int64_t(rt->pool->size()) && double(m) * n * k < 4e6;
  if (perBatch) {
    rt->pool->parallelFor(batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; ++i)
        one(i, nullptr);
    });
    return;
  }
  for (int64_t i = 0; i < batch; ++i)
    one(i, rt->pool);
}

extern "C" void kiln_rt_fail(RuntimeContext *rt, int64_t node, int64_t value) {
  int64_t none = -1;
  if (rt->failedNode.compare_exchange_strong(none, node))
    rt->failedValue = value;
}

extern "C" uint64_t kiln_rt_dropout_key(RuntimeContext *rt, int64_t opSeed) {
  return dropoutKey(rt->seed, opSeed, rt->step);
}
