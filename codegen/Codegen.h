//===- Codegen.h - Lowering graph IR to LLVM IR ------------------*- C++
//-*-===//
//
// A graph becomes one LLVM module whose entry point
//
//   void kiln_step(ptr %bufs, ptr %rt)
//
// runs the whole graph: `bufs` holds one pointer per buffer slot (inputs,
// parameters, state, intermediates, scratch) and `rt` is the runtime's
// context (thread pool, dropout seed and step, the first error). Each op
// becomes a kernel: a loop nest over a range [begin, end) of its outermost
// parallel dimension, which the entry point runs on the thread pool when it
// is large. Matrix products call the runtime GEMM with micro-kernels
// generated into the module for the target (see emitGemmKernels).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_CODEGEN_H
#define KILN_CODEGEN_CODEGEN_H

#include "ir/Graph.h"
#include "llvm/Support/Error.h"
#include <memory>
#include <vector>

namespace llvm {
class GlobalVariable;
class LLVMContext;
class Module;
} // namespace llvm

namespace kiln {

/// Where each value lives while the compiled step runs.
struct BufferPlan {
  /// The slot holding node i's elements. Views (reshape, stop_gradient)
  /// share their operand's slot; -1 marks a transpose that every user reads
  /// in place (matmul), which is never materialised.
  std::vector<int64_t> slotOf;
  /// Per slot: the leaf node it holds, or -1 for workspace.
  std::vector<int64_t> leafOf;
  /// Per slot: byte offset in the workspace (workspace slots only). Slots
  /// whose live ranges do not overlap may share bytes.
  std::vector<int64_t> offset;
  /// Per slot: its size in the workspace (0 for leaves), a multiple of 64.
  std::vector<int64_t> bytes;
  /// Per node: a scratch slot (convolution's im2col buffer), or -1.
  std::vector<int64_t> scratchOf;
  int64_t workspaceBytes = 0;
  /// A copy of `bytes` bytes from slot `from` to slot `to`.
  struct Copy {
    int64_t from, to, bytes;
  };
  /// The copies that end the step, in order: each updated leaf (parameter
  /// or state) receives its new value in its own buffer, so the caller's
  /// buffers hold the next step's values and nothing is copied out. A new
  /// value that lives in another updated leaf's buffer is first staged in
  /// the workspace (the first copies), so no copy reads a buffer an earlier
  /// one wrote.
  std::vector<Copy> endCopies;
  size_t numSlots() const { return leafOf.size(); }
  /// The workspace a plan that shared no bytes would need.
  int64_t unsharedBytes() const {
    int64_t sum = 0;
    for (int64_t b : bytes)
      sum += b;
    return sum;
  }
};

/// Plans the buffers of g's nodes.
BufferPlan planBuffers(const Graph &g);

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

struct LoweringOptions {
  /// Bits for each function's "prefer-vector-width"; 0 leaves LLVM's choice.
  unsigned vectorWidth = 0;
  MicroTile gemm;
};

/// Lowers g, float32 throughout, to a module with the entry point above.
llvm::Expected<std::unique_ptr<llvm::Module>>
lowerToLLVM(const Graph &g, const BufferPlan &plan, llvm::LLVMContext &ctx,
            const LoweringOptions &opts);

} // namespace kiln

#endif
