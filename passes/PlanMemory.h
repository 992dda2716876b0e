//===- PlanMemory.h - Where values live in the compiled step ---*- C++ -*-===//
//
// The memory plan of a graph: for each node, its storage class (its own
// buffer, the caller's leaf buffer, or an alias that needs none) and, for
// workspace buffers, a byte offset. Buffers whose live ranges do not overlap
// share bytes. Codegen reads the plan; it decides nothing about memory
// itself.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_PLANMEMORY_H
#define KILN_PASSES_PLANMEMORY_H

#include "ir/Graph.h"
#include <cstdint>
#include <vector>

namespace kiln {

/// How a node's value is stored while the step runs: its alias class.
enum class Storage : uint8_t {
  /// A workspace slot of its own, which its kernel writes.
  Buffer,
  /// The caller's buffer: an input, parameter or state leaf.
  Leaf,
  /// Operand 0's slot, reinterpreted (reshape, stop_gradient).
  View,
  /// Never materialised: every user is a matmul, which reads operand 0
  /// with its last two axes swapped.
  Transposed,
  /// A float constant its elementwise users read as an immediate.
  Immediate,
  /// A broadcast of one element, which its elementwise users read as
  /// operand 0's element 0.
  Splat,
  /// A further result of a fused node (`result {index}`): a slot the fused
  /// node's kernel writes, or the slot of the leaf it updates in place.
  Result,
};

/// The most K the runtime GEMM sums in one K block (kiln::kGemmKC, which
/// codegen checks it equals): a product of no more K is finished in one
/// pass over each block of C, so a tile of C need not outlive its block.
inline constexpr int64_t kGemmKBlock = 256;

/// Where each value lives while the compiled step runs.
struct BufferPlan {
  /// Per node: its alias class.
  std::vector<Storage> storage;
  /// Per node: the slot holding its elements, or -1 when it has none
  /// (Transposed, Immediate, Splat). Views hold their operand's slot.
  std::vector<int64_t> slotOf;
  /// Per slot: the leaf node it holds, or -1 for workspace.
  std::vector<int64_t> leafOf;
  /// Per slot: byte offset in the workspace (workspace slots only).
  std::vector<int64_t> offset;
  /// Per slot: its size in the workspace (0 for leaves), a multiple of 64.
  std::vector<int64_t> bytes;
  /// Per gemm, conv or reduce kernel: the slot its GEMM writes the product
  /// to, or its reduction accumulates in: the product's own if it is a
  /// result, else a reduction's scratch. A gemm or conv kernel's product
  /// that is no result has no slot (-1) if its K fits one K block
  /// (kGemmKBlock): the GEMM keeps each block of it in a tile of its
  /// thread's for the epilogue, and it never reaches memory. With more K,
  /// it is written over the kernel's first result not written in place
  /// (the epilogue reads each element before it stores that result there),
  /// or, if every result is, kept in panels of the GEMM's threads (-1).
  /// -1 for other nodes.
  std::vector<int64_t> productOf;
  /// Per conv2d node or conv kernel: the scratch slot of its im2col column
  /// matrix; -1 for other nodes.
  std::vector<int64_t> colsOf;
  int64_t workspaceBytes = 0;
  /// A copy of `bytes` bytes from slot `from` to slot `to`.
  struct Copy {
    int64_t from, to, bytes;
  };
  /// Per node: true if its kernel writes it into the buffer of the leaf it
  /// updates (a parameter or optimizer state), in place: the kernel reads
  /// that leaf only at the element it writes, after every other reader.
  std::vector<bool> inPlace;
  /// The copies that end the step, in order: each updated leaf (parameter
  /// or state) receives its new value in its own buffer, so the caller's
  /// buffers hold the next step's values and nothing is copied out. A new
  /// value that lives in another updated leaf's buffer is first staged in
  /// the workspace (the first copies), so no copy reads a buffer an earlier
  /// one wrote.
  std::vector<Copy> endCopies;

  size_t numSlots() const { return leafOf.size(); }
  /// The workspace a plan that shared no bytes would need.
  int64_t unsharedBytes() const;
  /// The step's launches: one per computed node (a loop kernel or a GEMM
  /// call), two for a convolution (im2col and its GEMM).
  int64_t kernels = 0;
  /// True if the step computes node i into a workspace buffer of its own
  /// (a kernel or a runtime call writes it). Constants are materialised
  /// where an op other than an elementwise one reads them.
  bool materialized(size_t i) const { return storage[i] == Storage::Buffer; }
  /// The number of bytes updated in place, which no end copy moves.
  int64_t inPlaceBytes = 0;
};

/// Plans the buffers of g's nodes, which run one after another in graph
/// order.
BufferPlan planMemory(const Graph &g);

} // namespace kiln

#endif
