//===- Codegen.h - Lowering graph IR to LLVM IR -----------------*- C++ -*-===//
//
// A graph becomes LLVM modules whose entry point
//
//   void kiln_step(ptr %bufs, ptr %rt)
//
// runs the whole graph: `bufs` holds one pointer per buffer slot (inputs,
// parameters, state, intermediates, scratch; passes/PlanMemory.h plans
// them) and `rt` is the runtime's context (thread pool, dropout seed and
// step, the first error). Each op that needs one becomes a kernel: a loop
// nest over a range [begin, end) of its outermost parallel dimension, which
// the entry point runs on the thread pool when it is large (see
// KernelBuilder.h). Matrix products call the runtime GEMM with micro-kernels
// generated into the module for the target (see emitGemmKernels). The
// lowering of each op is registered per family in codegen/ops/.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_CODEGEN_H
#define KILN_CODEGEN_CODEGEN_H

#include "ir/Graph.h"
#include "passes/PlanMemory.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/Error.h"
#include <memory>
#include <vector>

namespace llvm {
class GlobalVariable;
} // namespace llvm

namespace kiln {

/// Name of the entry point.
inline constexpr const char *kEntryName = "kiln_step";

/// The GEMM micro-tile: MR rows by NV vectors of `width` floats.
struct MicroTile {
  unsigned width = 8;
  unsigned mr = 6;
  unsigned nv = 2;
  unsigned nr() const { return nv * width; }
};

/// The tile for vectors of `vectorBits` and a file of `registers` vector
/// registers: MR x NV accumulators, NV vectors of B and A's broadcast must
/// all stay in registers.
MicroTile chooseMicroTile(unsigned vectorBits, unsigned registers);

/// The table of micro-kernels, [MR + 1 x ptr], laid out as kiln::GemmKernels
/// describes; each has the signature of kiln::GemmMicroKernel
/// (runtime/Gemm.h).
inline constexpr const char *kGemmKernelsName = "kiln_gemm_kernels";

/// Emits the micro-kernels for `tile` and their table into m, or returns
/// the table if m already has it.
llvm::GlobalVariable *emitGemmKernels(llvm::Module &m, const MicroTile &tile);

/// Declares the table emitGemmKernels defines, for a module linked with
/// micro-kernels compiled elsewhere.
llvm::GlobalVariable *declareGemmKernels(llvm::Module &m,
                                         const MicroTile &tile);

struct LoweringOptions {
  /// Bits for each function's "prefer-vector-width"; 0 leaves LLVM's choice.
  unsigned vectorWidth = 0;
  MicroTile gemm;
  /// Declare the micro-kernels' table instead of emitting it: the JIT
  /// compiles the micro-kernels once and links every step with them.
  bool externalGemmKernels = false;
};

/// One module of a lowered step, with its own context.
struct ModulePart {
  std::unique_ptr<llvm::LLVMContext> ctx;
  std::unique_ptr<llvm::Module> module;
};

/// Lowers g (f32 values, i32 ids and labels) to `parts` modules (fewer if g has
/// fewer kernels), each in its own context: module 0 holds the entry point
/// above and calls the kernels of the others. They can be optimised and
/// compiled in parallel, and linked together.
llvm::Expected<std::vector<ModulePart>> lowerToLLVM(const Graph &g,
                                                    const BufferPlan &plan,
                                                    const LoweringOptions &opts,
                                                    unsigned parts = 1);

} // namespace kiln

#endif
