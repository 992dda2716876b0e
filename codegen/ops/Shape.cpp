//===- Shape.cpp - Lowering data movement ---------------------------------===//
//
// broadcast, transpose and slice copy through their strided map
// (ir/IndexMap.h): one task iteration per row of the result, whose inner
// loop walks the row at the map's innermost stride. reshape is a view; pad
// and concat have loops of their own.
//
//===----------------------------------------------------------------------===//
#include "codegen/KernelBuilder.h"
#include "codegen/OpLowering.h"
#include "ir/IndexMap.h"
#include "ir/OpRules.h"

using namespace kiln;
using namespace llvm;

static int64_t elems(const Node &n) { return *numElements(n.type.shape); }

/// out[i] = in[base + sum(idx(i) * strides)]: broadcast, transpose, slice.
static void lowerStrided(KernelBuilder &kb, const Node &n) {
  StridedMap map = *stridedMapOf(n);
  ArrayRef<int64_t> shape = map.shape, strides = map.strides;
  int64_t len = shape.empty() ? 1 : shape.back();
  int64_t inner = shape.empty() ? 0 : strides.back();
  if (!shape.empty()) {
    shape = shape.drop_back();
    strides = strides.drop_back();
  }
  if (kb.beginKernel(n, 2)) {
    Kernel &k = kb.kernel();
    Type *t = kb.elemType(n);
    kb.loop(k.begin, k.end, [&](Value *row) {
      Value *src = kb.stridedOffset(row, shape, strides, map.base);
      Value *dst = kb.mul(row, len);
      kb.loop(len, [&](Value *j) {
        kb.store(kb.load(t, k.buf[1], kb.add(src, kb.mul(j, inner))), k.buf[0],
                 kb.add(dst, j));
      });
    });
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0])}, elems(n) / len,
            std::max<int64_t>(1, kElementGrain / len));
}

/// pad as a gather: out[o] = in[(o - low) / (interior + 1)] where that is a
/// whole in-range index on every axis, else 0.
static void lowerPad(KernelBuilder &kb, const Node &n) {
  const Shape &out = n.type.shape, &in = n.operands[0]->type.shape;
  int64_t len = out.back(), rows = elems(n) / len;
  if (kb.beginKernel(n, 2)) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    auto low = n.intsAttr("low"), interior = n.intsAttr("interior");
    Shape inStrides = stridesOf(in);
    Type *t = kb.elemType(n);
    // Whether axis d's output index o maps to an input element, and its
    // offset.
    auto axis = [&](size_t d, Value *o, Value *&ok, Value *&off) {
      Value *rel = b.CreateSub(o, kb.c64(low[d]));
      Value *q = b.CreateSDiv(rel, kb.c64(interior[d] + 1));
      Value *r = b.CreateSRem(rel, kb.c64(interior[d] + 1));
      ok = b.CreateAnd(b.CreateAnd(b.CreateICmpSGE(rel, kb.c64(0)),
                                   b.CreateICmpEQ(r, kb.c64(0))),
                       b.CreateICmpSLT(q, kb.c64(in[d])));
      off = b.CreateMul(q, kb.c64(inStrides[d]));
    };
    kb.loop(k.begin, k.end, [&](Value *row) {
      auto idx = kb.unravel(row, ArrayRef<int64_t>(out).drop_back());
      Value *rowOk = b.getTrue(), *src = kb.c64(0);
      for (size_t d = 0; d + 1 < out.size(); ++d) {
        Value *ok, *off;
        axis(d, idx[d], ok, off);
        rowOk = b.CreateAnd(rowOk, ok);
        src = b.CreateAdd(src, off);
      }
      kb.loop(len, [&](Value *j) {
        Value *ok, *off;
        axis(out.size() - 1, j, ok, off);
        ok = b.CreateAnd(ok, rowOk);
        // Load from a clamped index so the load is always safe.
        Value *at = b.CreateSelect(ok, b.CreateAdd(src, off), kb.c64(0));
        Value *v = kb.load(t, k.buf[1], at);
        kb.store(b.CreateSelect(ok, v, Constant::getNullValue(t)), k.buf[0],
                 kb.add(kb.mul(row, len), j));
      });
    });
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0])}, rows,
            std::max<int64_t>(1, kElementGrain / len));
}

static void lowerConcat(KernelBuilder &kb, const Node &n) {
  int64_t axis = cantFail(normaliseAxis(n, n.intAttr("axis"), n.type.rank()));
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= n.type.shape[d];
  SmallVector<int64_t, 4> slots{kb.slot(n)};
  for (const Node *o : n.operands)
    slots.push_back(kb.slot(o));
  int64_t rowLen = elems(n) / outer;
  if (kb.beginKernel(n, slots.size())) {
    Kernel &k = kb.kernel();
    Type *t = kb.elemType(n);
    kb.loop(k.begin, k.end, [&](Value *r) {
      int64_t at = 0;
      for (size_t o = 0; o < n.operands.size(); ++o) {
        int64_t chunk = elems(*n.operands[o]) / outer;
        Value *src = kb.mul(r, chunk);
        Value *dst = kb.add(kb.mul(r, rowLen), kb.c64(at));
        kb.loop(chunk, [&](Value *j) {
          kb.store(kb.load(t, k.buf[o + 1], kb.add(src, j)), k.buf[0],
                   kb.add(dst, j));
        });
        at += chunk;
      }
    });
  }
  kb.launch(slots, outer, std::max<int64_t>(1, kElementGrain / rowLen));
}

void kiln::registerShapeLowerings(LoweringTable &t) {
  t[size_t(Op::Broadcast)].lower = lowerStrided;
  t[size_t(Op::Transpose)].lower = lowerStrided;
  t[size_t(Op::Slice)].lower = lowerStrided;
  t[size_t(Op::Reshape)].aliasOnly = true;
  t[size_t(Op::Pad)].lower = lowerPad;
  t[size_t(Op::Concat)].lower = lowerConcat;
}
