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

ReductionLoops::ReductionLoops(const Shape &in, ArrayRef<int64_t> axes, Op op,
                               int64_t outputs)
    : in(in), axes(axes.begin(), axes.end()), op(op), outputs(outputs),
      count(*numElements(in) / std::max<int64_t>(1, outputs)) {
  leading = op != Op::Max && outputs > 1;
  for (size_t i = 0; i < axes.size(); ++i)
    leading &= axes[i] == int64_t(i);
}

int64_t ReductionLoops::grain() const {
  return leading ? 64
                 : std::max<int64_t>(1, kElementGrain /
                                            std::max<int64_t>(1, count));
}

void ReductionLoops::emit(
    KernelBuilder &kb, Value *acc,
    function_ref<Value *(Value *, ArrayRef<Value *>)> element,
    function_ref<void(Value *)> done) const {
  Kernel &k = kb.kernel();
  IRBuilder<> &b = kb.b();
  bool isMax = op == Op::Max;
  Value *init = isMax ? kb.cf(-INFINITY) : kb.cf(0);
  auto finish = [&](Value *v) {
    return op == Op::Mean ? b.CreateFDiv(v, kb.cf(float(count))) : v;
  };
  if (leading) {
    kb.loop(k.begin, k.end, [&](Value *o) { kb.store(init, acc, o); });
    kb.loop(count, [&](Value *r) {
      kb.loop(k.begin, k.end, [&](Value *o) {
        SmallVector<Value *, 2> rowCol;
        if (in.size() == 2)
          rowCol = {r, o};
        Value *v = element(kb.add(kb.mul(r, outputs), o), rowCol);
        kb.store(b.CreateFAdd(kb.loadF(acc, o), v), acc, o);
      });
    });
    kb.loop(k.begin, k.end, [&](Value *o) {
      if (op == Op::Mean)
        kb.store(finish(kb.loadF(acc, o)), acc, o);
      done(o);
    });
    return;
  }
  // General: each output sums its reduced block; the innermost reduced axis
  // is the innermost loop. Reduced axes next to each other are one loop
  // (the H and W of a bias gradient: 196 elements, not 14 rows of 14, each
  // of which the vectorizer would reduce across its lanes).
  Shape inStrides = stridesOf(in), kept, keptStrides;
  for (int64_t d = 0; d < int64_t(in.size()); ++d)
    if (!llvm::is_contained(axes, d)) {
      kept.push_back(in[d]);
      keptStrides.push_back(inStrides[d]);
    }
  SmallVector<std::pair<int64_t, int64_t>, 4> spans; // (extent, stride)
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t d = axes[i];
    if (i > 0 && axes[i - 1] == d - 1) {
      spans.back() = {spans.back().first * in[d], inStrides[d]};
      continue;
    }
    spans.push_back({in[d], inStrides[d]});
  }
  kb.loop(k.begin, k.end, [&](Value *o) {
    Value *base = kb.stridedOffset(o, kept, keptStrides, 0);
    AllocaInst *sum = kb.var(kb.f32(), init);
    std::function<void(size_t, Value *)> nest = [&](size_t level, Value *at) {
      if (level == spans.size()) {
        Value *v = element(at, {});
        kb.set(sum, isMax ? kb.nanMax(kb.get(sum), v)
                          : kb.reassocAdd(kb.get(sum), v));
        return;
      }
      int64_t extent = spans[level].first, stride = spans[level].second;
      auto body = [&](Value *i) {
        nest(level + 1, kb.add(at, kb.mul(i, stride)));
      };
      if (level + 1 == spans.size())
        kb.rolledLoop(extent, body);
      else
        kb.loop(extent, body);
    };
    nest(0, base);
    kb.store(finish(kb.get(sum)), acc, o);
    done(o);
  });
}

static void lowerReduce(KernelBuilder &kb, const Node &n) {
  ReductionLoops loops(n.operands[0]->type.shape, cantFail(reducedAxes(n)),
                       n.op, *numElements(n.type.shape));
  if (kb.beginKernel(n, 2)) {
    Kernel &k = kb.kernel();
    loops.emit(
        kb, k.buf[0],
        [&](Value *at, ArrayRef<Value *>) { return kb.loadF(k.buf[1], at); },
        [](Value *) {});
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0])}, *numElements(n.type.shape),
            loops.grain());
}

void kiln::registerReduceLowerings(LoweringTable &t) {
  t[size_t(Op::Sum)].lower = lowerReduce;
  t[size_t(Op::Mean)].lower = lowerReduce;
  t[size_t(Op::Max)].lower = lowerReduce;
}
