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
// is large. Matrix products call the runtime GEMM.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_CODEGEN_H
#define KILN_CODEGEN_CODEGEN_H

#include "ir/Graph.h"
#include "llvm/Support/Error.h"
#include <memory>
#include <vector>

namespace llvm {
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
  /// Per slot: byte offset in the workspace (workspace slots only).
  std::vector<int64_t> offset;
  /// Per node: a scratch slot (convolution's im2col buffer), or -1.
  std::vector<int64_t> scratchOf;
  int64_t workspaceBytes = 0;
  size_t numSlots() const { return leafOf.size(); }
};

/// Plans the buffers of g's nodes.
BufferPlan planBuffers(const Graph &g);

/// Name of the entry point.
inline constexpr const char *kEntryName = "kiln_step";

/// Lowers g, float32 throughout, to a module with the entry point above.
/// `vectorWidth` (bits, 0 for LLVM's choice) sets each function's
/// "prefer-vector-width".
llvm::Expected<std::unique_ptr<llvm::Module>>
lowerToLLVM(const Graph &g, const BufferPlan &plan, llvm::LLVMContext &ctx,
            unsigned vectorWidth = 0);

} // namespace kiln

#endif
