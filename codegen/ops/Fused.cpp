//===- Fused.cpp - Lowering fused kernels ---------------------------------===//
//
// An elementwise fused node is one loop over its result's elements. Each
// element's value is its body evaluated at that element: an elementwise op
// applies its scalar function (ir/ops/Scalar.h) to its operands' values at
// the same index, a broadcast, transpose, slice or reshape reads its
// operand at the index its strided map gives (ir/IndexMap.h), and an arg
// loads the operand's buffer there. So values are never materialised
// between the ops of a body, and each is computed once per index.
//
//===----------------------------------------------------------------------===//
#include "codegen/KernelBuilder.h"
#include "codegen/OpLowering.h"
#include "ir/IndexMap.h"
#include "ir/OpRules.h"
#include "ir/ops/Scalar.h"

using namespace kiln;
using namespace llvm;

namespace {

class BodyEmitter {
public:
  BodyEmitter(KernelBuilder &kb, const Graph &body) : kb(kb), body(body) {}

  /// The value of body node x at flat index `at` of x's shape.
  Value *value(const Node *x, Value *at) {
    auto key = std::make_pair(x, at);
    if (Value *v = memo.lookup(key))
      return v;
    Value *v = compute(x, at);
    memo[key] = v;
    return v;
  }

private:
  Value *compute(const Node *x, Value *at) {
    Kernel &k = kb.kernel();
    switch (x->op) {
    case Op::Arg:
      return kb.load(kb.elemType(*x), k.buf[1 + x->intAttr("index")], at);
    case Op::Constant:
      return kb.cf(x->floatAttr("value"));
    case Op::Broadcast:
    case Op::Transpose:
    case Op::Slice:
    case Op::Reshape: {
      StridedMap map = *stridedMapOf(*x);
      // A row-major map (a reshape) reads the same flat index.
      if (map.base == 0 && map.strides == stridesOf(map.shape))
        return value(x->operands[0], at);
      return value(x->operands[0],
                   kb.stridedOffset(at, map.shape, map.strides, map.base));
    }
    default: {
      SmallVector<Value *, 2> args;
      for (const Node *o : x->operands)
        args.push_back(value(o, at));
      IRScalar s{kb};
      return scalar::apply(s, *x, args);
    }
    }
  }

  KernelBuilder &kb;
  const Graph &body;
  DenseMap<std::pair<const Node *, Value *>, Value *> memo;
};

void lowerFused(KernelBuilder &kb, const Node &n) {
  SmallVector<int64_t, 4> slots{kb.slot(n)};
  for (const Node *o : n.operands)
    slots.push_back(kb.slot(o));
  if (kb.beginKernel(n, slots.size())) {
    Kernel &k = kb.kernel();
    kb.loop(k.begin, k.end, [&](Value *i) {
      BodyEmitter body(kb, *n.body);
      kb.store(body.value(n.body->output, i), k.buf[0], i);
    });
  }
  kb.launch(slots, *numElements(n.type.shape), kElementGrain);
}

} // namespace

void kiln::registerFusedLowerings(LoweringTable &t) {
  t[size_t(Op::Fused)].lower = lowerFused;
  // Args exist only inside bodies, which lowerFused reads itself.
  t[size_t(Op::Arg)].aliasOnly = true;
}
