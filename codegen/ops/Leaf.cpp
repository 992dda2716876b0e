//===- Leaf.cpp - Lowering inputs, parameters, state and constants --------===//
//
// Inputs, parameters and state live in the caller's buffers and need no
// kernel. A constant that elementwise ops alone read is an immediate inside
// their loops (passes/PlanMemory.cpp); any other constant is filled by a
// kernel of its own.
//
//===----------------------------------------------------------------------===//
#include "codegen/KernelBuilder.h"
#include "codegen/OpLowering.h"

using namespace kiln;
using namespace llvm;

static void lowerConstant(KernelBuilder &kb, const Node &n) {
  if (kb.beginKernel(n, 1)) {
    Kernel &k = kb.kernel();
    double v = n.floatAttr("value");
    Value *fill = n.type.dtype == DType::I32
                      ? (Value *)kb.b().getInt32(int32_t(v))
                      : kb.cf(v);
    kb.loop(k.begin, k.end, [&](Value *i) { kb.store(fill, k.buf[0], i); });
  }
  kb.launch({kb.slot(n)}, *numElements(n.type.shape), kElementGrain);
}

void kiln::registerLeafLowerings(LoweringTable &t) {
  t[size_t(Op::Input)].aliasOnly = true;
  t[size_t(Op::Param)].aliasOnly = true;
  t[size_t(Op::State)].aliasOnly = true;
  t[size_t(Op::Constant)].lower = lowerConstant;
}
