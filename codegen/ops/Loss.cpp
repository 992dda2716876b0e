//===- Loss.cpp - Lowering the losses -------------------------------------===//
//
// A loss is one scalar: a single task sums the terms in order on one
// thread, so the result does not depend on the thread count.
//
//===----------------------------------------------------------------------===//
#include "codegen/KernelBuilder.h"
#include "codegen/OpLowering.h"

using namespace kiln;
using namespace llvm;

static void lowerCrossEntropy(KernelBuilder &kb, const Node &n) {
  if (kb.beginKernel(n, 3, "", /*unique=*/true)) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    int64_t rows = n.operands[0]->type.shape[0];
    int64_t C = n.operands[0]->type.shape[1];
    float eps = float(n.floatAttr("label_smoothing"));
    AllocaInst *total = kb.var(kb.f32(), kb.cf(0));
    kb.loop(rows, [&](Value *r) {
      Value *label = kb.load(kb.i32(), k.buf[2], r);
      kb.checkIndex(label, C, n);
      Value *row = kb.mul(r, C);
      AllocaInst *mx = kb.var(kb.f32(), kb.loadF(k.buf[1], row));
      kb.loop(C, [&](Value *i) {
        Value *v = kb.loadF(k.buf[1], kb.add(row, i));
        kb.set(mx,
               b.CreateSelect(b.CreateFCmpOLT(kb.get(mx), v), v, kb.get(mx)));
      });
      Value *m = kb.get(mx);
      AllocaInst *sum = kb.var(kb.f32(), kb.cf(0));
      AllocaInst *all = kb.var(kb.f32(), kb.cf(0));
      kb.loop(C, [&](Value *i) {
        Value *v = kb.loadF(k.buf[1], kb.add(row, i));
        kb.set(sum, kb.reassocAdd(kb.get(sum), kb.unary(Intrinsic::exp,
                                                        b.CreateFSub(v, m))));
        kb.set(all, kb.reassocAdd(kb.get(all), v));
      });
      Value *lse = b.CreateFAdd(m, kb.unary(Intrinsic::log, kb.get(sum)));
      Value *picked =
          kb.loadF(k.buf[1], kb.add(row, b.CreateSExt(label, kb.i64())));
      Value *loss = b.CreateFAdd(
          b.CreateFMul(kb.cf(1 - eps), b.CreateFSub(lse, picked)),
          b.CreateFMul(
              kb.cf(eps),
              b.CreateFSub(lse, b.CreateFDiv(kb.get(all), kb.cf(float(C))))));
      kb.set(total, b.CreateFAdd(kb.get(total), loss));
    });
    kb.store(b.CreateFDiv(kb.get(total), kb.cf(float(rows))), k.buf[0],
             kb.c64(0));
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0]), kb.slot(n.operands[1])}, 1, 1);
}

/// mse and binary_cross_entropy_with_logits: the mean of a term per element.
static void lowerPairLoss(KernelBuilder &kb, const Node &n) {
  if (kb.beginKernel(n, 3)) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    int64_t count = *numElements(n.operands[0]->type.shape);
    AllocaInst *total = kb.var(kb.f32(), kb.cf(0));
    kb.loop(count, [&](Value *i) {
      Value *x = kb.loadF(k.buf[1], i), *t = kb.loadF(k.buf[2], i), *term;
      if (n.op == Op::MSE) {
        Value *d = b.CreateFSub(x, t);
        term = b.CreateFMul(d, d);
      } else { // max(z, 0) - z t + log1p(exp(-|z|))
        Value *relu = b.CreateSelect(b.CreateFCmpOGT(x, kb.cf(0)), x, kb.cf(0));
        Value *soft = kb.libm(
            "log1pf", kb.unary(Intrinsic::exp,
                               b.CreateFNeg(kb.unary(Intrinsic::fabs, x))));
        term = b.CreateFAdd(b.CreateFSub(relu, b.CreateFMul(x, t)), soft);
      }
      kb.set(total, kb.reassocAdd(kb.get(total), term));
    });
    kb.store(b.CreateFDiv(kb.get(total), kb.cf(float(count))), k.buf[0],
             kb.c64(0));
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0]), kb.slot(n.operands[1])}, 1, 1);
}

void kiln::registerLossLowerings(LoweringTable &t) {
  t[size_t(Op::CrossEntropy)].lower = lowerCrossEntropy;
  t[size_t(Op::MSE)].lower = lowerPairLoss;
  t[size_t(Op::BCEWithLogits)].lower = lowerPairLoss;
}
