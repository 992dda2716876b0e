//===- OpLowering.h - Per-op lowering to LLVM IR ----------------*- C++ -*-===//
//
// Each op's lowering sits in codegen/ops/<Family>.cpp, mirroring ir/ops/, and
// registers itself in one table here. An op whose value never needs a
// kernel (a leaf in the caller's buffer, a view of its operand) says so
// instead; a unit test walks Ops.def and fails if an op has neither.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_OPLOWERING_H
#define KILN_CODEGEN_OPLOWERING_H

#include "ir/Graph.h"
#include <array>

namespace kiln {

class KernelBuilder;

/// Emits node n's kernels and their launches.
using LowerFn = void (*)(KernelBuilder &kb, const Node &n);

struct OpLowering {
  LowerFn lower = nullptr;
  /// The op's value always aliases storage it does not write (a leaf's or
  /// its operand's buffer): it never needs a kernel.
  bool aliasOnly = false;
};

/// The lowering of an op (lower is null for alias-only ops and for ops
/// that have no lowering, which is a bug the table test catches).
const OpLowering &opLowering(Op op);

using LoweringTable = std::array<OpLowering, kNumOps>;
void registerLeafLowerings(LoweringTable &t);
void registerElementwiseLowerings(LoweringTable &t);
void registerReduceLowerings(LoweringTable &t);
void registerShapeLowerings(LoweringTable &t);
void registerLinalgLowerings(LoweringTable &t);
void registerConvLowerings(LoweringTable &t);
void registerNetworkLowerings(LoweringTable &t);
void registerLossLowerings(LoweringTable &t);
void registerFusedLowerings(LoweringTable &t);

} // namespace kiln

#endif
