//===- Reduce.cpp - Lowering sum, mean and max ----------------------------===//
//
// Each output element accumulates its reduced block in one thread, in a
// fixed order, so results do not depend on the thread count. Reducing the
// leading axes (a bias gradient) accumulates whole rows instead, so the
// inner loop runs over contiguous outputs.
//
//===----------------------------------------------------------------------===//
#include "codegen/KernelBuilder.h"
#include "codegen/OpLowering.h"
#include "ir/OpRules.h"
#include <cmath>
#include <functional>

using namespace kiln;
using namespace llvm;

static void lowerReduce(KernelBuilder &kb, const Node &n) {
  const Shape &in = n.operands[0]->type.shape;
  Shape axes = cantFail(reducedAxes(n));
  bool isMax = n.op == Op::Max;
  int64_t outN = *numElements(n.type.shape);
  int64_t count = *numElements(in) / outN;
  bool leading = true;
  for (size_t i = 0; i < axes.size(); ++i)
    leading &= axes[i] == int64_t(i);
  leading &= !isMax && outN > 1;
  SmallVector<int64_t, 2> slots{kb.slot(n), kb.slot(n.operands[0])};
  if (!kb.beginKernel(n, 2)) {
    kb.launch(slots, outN,
              leading ? 64 : std::max<int64_t>(1, kElementGrain / count));
    return;
  }
  Kernel &k = kb.kernel();
  IRBuilder<> &b = kb.b();
  Value *init = isMax ? kb.cf(-INFINITY) : kb.cf(0);
  auto finish = [&](Value *acc) {
    return n.op == Op::Mean ? b.CreateFDiv(acc, kb.cf(float(count))) : acc;
  };
  if (leading) {
    kb.loop(k.begin, k.end, [&](Value *o) { kb.store(init, k.buf[0], o); });
    kb.loop(count, [&](Value *r) {
      kb.loop(k.begin, k.end, [&](Value *o) {
        Value *v = kb.loadF(k.buf[1], kb.add(kb.mul(r, outN), o));
        kb.store(b.CreateFAdd(kb.loadF(k.buf[0], o), v), k.buf[0], o);
      });
    });
    if (n.op == Op::Mean)
      kb.loop(k.begin, k.end, [&](Value *o) {
        kb.store(finish(kb.loadF(k.buf[0], o)), k.buf[0], o);
      });
    kb.launch(slots, outN, 64);
    return;
  }
  // General: each output sums its reduced block; the innermost reduced axis
  // is the innermost loop.
  Shape inStrides = stridesOf(in), kept, keptStrides;
  for (int64_t d = 0; d < int64_t(in.size()); ++d)
    if (!llvm::is_contained(axes, d)) {
      kept.push_back(in[d]);
      keptStrides.push_back(inStrides[d]);
    }
  kb.loop(k.begin, k.end, [&](Value *o) {
    Value *base = kb.stridedOffset(o, kept, keptStrides, 0);
    AllocaInst *acc = kb.var(kb.f32(), init);
    std::function<void(size_t, Value *)> nest = [&](size_t level, Value *at) {
      if (level == axes.size()) {
        Value *v = kb.loadF(k.buf[1], at);
        kb.set(acc, isMax ? kb.nanMax(kb.get(acc), v)
                          : kb.reassocAdd(kb.get(acc), v));
        return;
      }
      kb.loop(in[axes[level]], [&](Value *i) {
        nest(level + 1, kb.add(at, kb.mul(i, inStrides[axes[level]])));
      });
    };
    nest(0, base);
    kb.store(finish(kb.get(acc)), k.buf[0], o);
  });
  kb.launch(slots, outN, std::max<int64_t>(1, kElementGrain / count));
}

void kiln::registerReduceLowerings(LoweringTable &t) {
  t[size_t(Op::Sum)].lower = lowerReduce;
  t[size_t(Op::Mean)].lower = lowerReduce;
  t[size_t(Op::Max)].lower = lowerReduce;
}
