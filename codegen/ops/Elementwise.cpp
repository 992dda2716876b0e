//===- Elementwise.cpp - Lowering elementwise ops -------------------------===//
//
// Each elementwise op is one loop over its elements whose body is the op's
// scalar function from ir/ops/Scalar.h, instantiated on LLVM values: the
// same template the reference interpreter runs on host numbers.
//
//===----------------------------------------------------------------------===//
#include "codegen/KernelBuilder.h"
#include "codegen/OpLowering.h"
#include "ir/ops/Scalar.h"

using namespace kiln;
using namespace llvm;

static void lowerScalar(KernelBuilder &kb, const Node &n) {
  kb.elementwise(n, [&](ArrayRef<Value *> args, Value *) {
    IRScalar s{kb};
    return scalar::apply(s, n, args);
  });
}

void kiln::registerElementwiseLowerings(LoweringTable &t) {
#define X(E, F, A) t[size_t(Op::E)].lower = lowerScalar;
  KILN_FOR_EACH_SCALAR_OP(X)
#undef X
  // stop_gradient is a view of its operand.
  t[size_t(Op::StopGradient)] = {nullptr, true};
}
