//===- Network.cpp - Lowering softmax, normalisation, dropout, lookups ----===//
//
// softmax and log_softmax run one line along their axis per task iteration
// (max, sum of exponentials, then the result); batch norm one channel;
// layer norm one row. Dropout is elementwise with the generator of
// ir/ops/Scalar.h. embedding and one_hot check each id and report the first
// bad one to the runtime.
//
//===----------------------------------------------------------------------===//
#include "codegen/KernelBuilder.h"
#include "codegen/OpLowering.h"
#include "ir/OpRules.h"
#include "ir/ops/Scalar.h"
#include <cmath>

using namespace kiln;
using namespace llvm;

static int64_t elems(const Node &n) { return *numElements(n.type.shape); }

static void lowerSoftmax(KernelBuilder &kb, const Node &n) {
  const Shape &shape = n.type.shape;
  int64_t axis = cantFail(normaliseAxis(n, n.intAttr("axis"), n.type.rank()));
  int64_t outer = 1, len = shape[axis], inner = 1;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d)
    if (d != axis)
      (d < axis ? outer : inner) *= shape[d];
  if (kb.beginKernel(n, 2)) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    bool isLog = n.op == Op::LogSoftmax;
    kb.loop(k.begin, k.end, [&](Value *line) { // o * inner + in
      Value *base =
          kb.add(kb.mul(b.CreateUDiv(line, kb.c64(inner)), len * inner),
                 b.CreateURem(line, kb.c64(inner)));
      auto at = [&](Value *i) { return kb.add(base, kb.mul(i, inner)); };
      AllocaInst *mx = kb.var(kb.f32(), kb.cf(-INFINITY));
      kb.loop(len, [&](Value *i) {
        Value *v = kb.loadF(k.buf[1], at(i));
        kb.set(mx,
               b.CreateSelect(b.CreateFCmpOLT(kb.get(mx), v), v, kb.get(mx)));
      });
      Value *m = kb.get(mx);
      AllocaInst *sum = kb.var(kb.f32(), kb.cf(0));
      kb.loop(len, [&](Value *i) {
        Value *e = kb.unary(Intrinsic::exp,
                            b.CreateFSub(kb.loadF(k.buf[1], at(i)), m));
        kb.set(sum, kb.reassocAdd(kb.get(sum), e));
      });
      Value *total = kb.get(sum);
      Value *logSum = isLog ? kb.unary(Intrinsic::log, total) : nullptr;
      kb.loop(len, [&](Value *i) {
        Value *z = b.CreateFSub(kb.loadF(k.buf[1], at(i)), m);
        Value *y = isLog ? b.CreateFSub(z, logSum)
                         : b.CreateFDiv(kb.unary(Intrinsic::exp, z), total);
        kb.store(y, k.buf[0], at(i));
      });
    });
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0])}, outer * inner,
            std::max<int64_t>(1, kElementGrain / len));
}

static void lowerBatchNorm(KernelBuilder &kb, const Node &n) {
  const Shape &shape = n.type.shape;
  int64_t C = shape[1], outer = shape[0], inner = elems(n) / (outer * C);
  SmallVector<int64_t, 6> slots{kb.slot(n)};
  for (const Node *o : n.operands)
    slots.push_back(kb.slot(o));
  if (kb.beginKernel(n, slots.size())) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    bool train = n.stringAttr("mode") == "train";
    float count = float(outer * inner);
    Value *x = k.buf[1];
    kb.loop(k.begin, k.end, [&](Value *c) {
      auto each = [&](function_ref<void(Value *)> fn) {
        kb.loop(outer, [&](Value *o) {
          Value *row = kb.mul(kb.add(kb.mul(o, C), c), inner);
          kb.loop(inner, [&](Value *i) { fn(kb.add(row, i)); });
        });
      };
      Value *mean = kb.loadF(k.buf[4], c), *var = kb.loadF(k.buf[5], c);
      if (train) {
        AllocaInst *sum = kb.var(kb.f32(), kb.cf(0));
        each([&](Value *at) {
          kb.set(sum, kb.reassocAdd(kb.get(sum), kb.loadF(x, at)));
        });
        mean = b.CreateFDiv(kb.get(sum), kb.cf(count));
        AllocaInst *sq = kb.var(kb.f32(), kb.cf(0));
        each([&](Value *at) {
          Value *d = b.CreateFSub(kb.loadF(x, at), mean);
          kb.set(sq, kb.reassocAdd(kb.get(sq), b.CreateFMul(d, d)));
        });
        var = b.CreateFDiv(kb.get(sq), kb.cf(count));
      }
      Value *scale =
          b.CreateFDiv(kb.loadF(k.buf[2], c),
                       kb.unary(Intrinsic::sqrt,
                                b.CreateFAdd(var, kb.cf(n.floatAttr("eps")))));
      Value *beta = kb.loadF(k.buf[3], c);
      each([&](Value *at) {
        Value *y = b.CreateFAdd(
            b.CreateFMul(b.CreateFSub(kb.loadF(x, at), mean), scale), beta);
        kb.store(y, k.buf[0], at);
      });
    });
  }
  kb.launch(slots, C, 1);
}

static void lowerLayerNorm(KernelBuilder &kb, const Node &n) {
  int64_t d = n.type.shape.back(), rows = elems(n) / d;
  if (kb.beginKernel(n, 4)) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    kb.loop(k.begin, k.end, [&](Value *r) {
      Value *row = kb.mul(r, d);
      auto x = [&](Value *i) { return kb.loadF(k.buf[1], kb.add(row, i)); };
      AllocaInst *sum = kb.var(kb.f32(), kb.cf(0));
      kb.loop(d,
              [&](Value *i) { kb.set(sum, kb.reassocAdd(kb.get(sum), x(i))); });
      Value *mean = b.CreateFDiv(kb.get(sum), kb.cf(float(d)));
      AllocaInst *sq = kb.var(kb.f32(), kb.cf(0));
      kb.loop(d, [&](Value *i) {
        Value *dv = b.CreateFSub(x(i), mean);
        kb.set(sq, kb.reassocAdd(kb.get(sq), b.CreateFMul(dv, dv)));
      });
      Value *variance = b.CreateFDiv(kb.get(sq), kb.cf(float(d)));
      Value *inv = b.CreateFDiv(
          kb.cf(1),
          kb.unary(Intrinsic::sqrt,
                   b.CreateFAdd(variance, kb.cf(n.floatAttr("eps")))));
      kb.loop(d, [&](Value *i) {
        Value *xhat = b.CreateFMul(b.CreateFSub(x(i), mean), inv);
        Value *y = b.CreateFAdd(b.CreateFMul(xhat, kb.loadF(k.buf[2], i)),
                                kb.loadF(k.buf[3], i));
        kb.store(y, k.buf[0], kb.add(row, i));
      });
    });
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0]), kb.slot(n.operands[1]),
             kb.slot(n.operands[2])},
            rows, std::max<int64_t>(1, kElementGrain / d));
}

static void lowerDropout(KernelBuilder &kb, const Node &n) {
  double p = n.floatAttr("p");
  if (n.stringAttr("mode") == "eval" || p == 0) {
    kb.elementwise(n, [](ArrayRef<Value *> args, Value *) { return args[0]; });
    return;
  }
  Value *key = nullptr;
  kb.elementwise(
      n,
      [&](ArrayRef<Value *> args, Value *i) {
        IRScalar s{kb};
        return scalar::dropout(s, args[0], key, i, p);
      },
      [&] { key = kb.dropoutKey(n); });
}

static void lowerEmbedding(KernelBuilder &kb, const Node &n) {
  int64_t V = n.operands[1]->type.shape[0], D = n.operands[1]->type.shape[1];
  int64_t ids = elems(*n.operands[0]);
  if (kb.beginKernel(n, 3, "", /*unique=*/true)) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    kb.loop(k.begin, k.end, [&](Value *i) {
      Value *id = kb.load(kb.i32(), k.buf[1], i);
      kb.checkIndex(id, V, n);
      Value *src = kb.mul(b.CreateSExt(id, kb.i64()), D), *dst = kb.mul(i, D);
      kb.loop(D, [&](Value *j) {
        kb.store(kb.loadF(k.buf[2], kb.add(src, j)), k.buf[0], kb.add(dst, j));
      });
    });
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0]), kb.slot(n.operands[1])}, ids,
            std::max<int64_t>(1, kElementGrain / D));
}

static void lowerOneHot(KernelBuilder &kb, const Node &n) {
  int64_t C = n.intAttr("classes"), ids = elems(*n.operands[0]);
  if (kb.beginKernel(n, 2, "", /*unique=*/true)) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    kb.loop(k.begin, k.end, [&](Value *i) {
      Value *id = kb.load(kb.i32(), k.buf[1], i);
      kb.checkIndex(id, C, n);
      Value *row = kb.mul(i, C);
      kb.loop(C,
              [&](Value *j) { kb.store(kb.cf(0), k.buf[0], kb.add(row, j)); });
      kb.store(kb.cf(1), k.buf[0], kb.add(row, b.CreateSExt(id, kb.i64())));
    });
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0])}, ids,
            std::max<int64_t>(1, kElementGrain / C));
}

void kiln::registerNetworkLowerings(LoweringTable &t) {
  t[size_t(Op::Softmax)].lower = lowerSoftmax;
  t[size_t(Op::LogSoftmax)].lower = lowerSoftmax;
  t[size_t(Op::BatchNorm)].lower = lowerBatchNorm;
  t[size_t(Op::LayerNorm)].lower = lowerLayerNorm;
  t[size_t(Op::Dropout)].lower = lowerDropout;
  t[size_t(Op::Embedding)].lower = lowerEmbedding;
  t[size_t(Op::OneHot)].lower = lowerOneHot;
}
