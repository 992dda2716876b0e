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
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/SmallVector.h"
#include <array>

namespace llvm {
class Value;
}

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

/// Builds the im2col kernel of conv2d node `conv` (by the kernel of node
/// `sig`): its input in slot x into its column matrix in slot cols, and
/// defers it to the GEMM (KernelBuilder::launchPerProduct), which makes
/// each image's columns before its product. Returns kiln_rt_matmul's
/// arguments for that GEMM per image, which the caller's next callMatMul()
/// or launchGemm() must be: y[n] (O x OH*OW) = w (O x C*K*K) . cols[n],
/// into slot y (-1: the product is for the GEMM's epilogue only).
llvm::SmallVector<llvm::Value *, 11>
lowerConvolution(KernelBuilder &kb, const Node &sig, const Node &conv,
                 int64_t x, int64_t w, int64_t cols, int64_t y);

/// The loops of a sum, mean or max of an `in`-shaped value over `axes`
/// (Reduce.cpp): each output accumulates its block in one thread in a fixed
/// order, so results do not depend on the thread count; reducing leading
/// axes (a bias gradient) accumulates whole rows, so the inner loop runs
/// over contiguous outputs.
class ReductionLoops {
public:
  ReductionLoops(const Shape &in, llvm::ArrayRef<int64_t> axes, Op op,
                 int64_t outputs);
  /// Outputs per task chunk.
  int64_t grain() const;
  /// Emits, in the open kernel, outputs [begin, end) into `acc` (one float
  /// per output). element(at, axes) is the input element at flat index at;
  /// axes are its row and column when the input is rank 2 and reduced over
  /// rows, else empty. done(o) runs once output o holds its final value.
  void emit(KernelBuilder &kb, llvm::Value *acc,
            llvm::function_ref<llvm::Value *(llvm::Value *,
                                             llvm::ArrayRef<llvm::Value *>)>
                element,
            llvm::function_ref<void(llvm::Value *)> done) const;

private:
  Shape in, axes;
  Op op;
  int64_t outputs, count;
  bool leading;
};

} // namespace kiln

#endif
