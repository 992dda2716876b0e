//===- LowerToLLVM.cpp - The lowering driver ------------------------------===//
//
// Walks the graph in order and, for each node the memory plan materialises,
// calls its op's lowering (codegen/ops/, registered in OpLowering.h), which
// emits its kernels and their launches through a KernelBuilder. Nodes that
// alias other storage (leaves, views, transposes read in place, folded
// constants) emit nothing.
//
//===----------------------------------------------------------------------===//
#include "codegen/Codegen.h"
#include "codegen/KernelBuilder.h"
#include "codegen/OpLowering.h"
#include "llvm/IR/Module.h"

using namespace kiln;
using namespace llvm;

const OpLowering &kiln::opLowering(Op op) {
  static const LoweringTable table = [] {
    LoweringTable t{};
    registerLeafLowerings(t);
    registerElementwiseLowerings(t);
    registerReduceLowerings(t);
    registerShapeLowerings(t);
    registerLinalgLowerings(t);
    registerConvLowerings(t);
    registerNetworkLowerings(t);
    registerLossLowerings(t);
    registerFusedLowerings(t);
    return t;
  }();
  return table[size_t(op)];
}

Expected<std::vector<ModulePart>> kiln::lowerToLLVM(const Graph &g,
                                                    const BufferPlan &plan,
                                                    const LoweringOptions &opts,
                                                    unsigned parts) {
  // Modules of at least about 8 kernels (about one per materialised node):
  // a smaller one costs more in its own pipeline than it saves.
  size_t work = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    work += plan.materialized(i);
  parts = std::max<unsigned>(1, std::min<size_t>(parts, work / 8));
  KernelBuilder kb(g, plan, opts, parts);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = *g.nodes[i];
    if (n.type.dtype != DType::F32 && n.type.dtype != DType::I32)
      return makeError("the JIT computes f32 and i32 values; node %" +
                       Twine(i) + " is " + n.type.str());
    if (!plan.materialized(i))
      continue;
    LowerFn lower = opLowering(n.op).lower;
    if (!lower)
      return makeError("internal error: no LLVM lowering for op '" +
                       n.info().mnemonic + "'");
    kb.beginNode();
    lower(kb, n);
  }
  return kb.finish();
}
