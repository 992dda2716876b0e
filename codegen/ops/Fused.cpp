//===- Fused.cpp - Lowering fused kernels ---------------------------------===//
//
// An elementwise fused node is one loop over its results' elements; a gemm
// fused node is a call of the runtime GEMM whose epilogue, run on each block
// of C as it is finished, computes the results from the product there (a
// conv fused node is the same after its im2col, with a GEMM per image); a
// reduce fused node is a reduction's loops, computing what it reduces as it
// reads it and its results from each output. In all, each element's value
// is the body evaluated at that element: an
// elementwise op applies its scalar function (ir/ops/Scalar.h) to its
// operands' values at the same index, a broadcast, transpose, slice or
// reshape reads its operand at the index its strided map gives
// (ir/IndexMap.h), an arg loads the operand's buffer there, and the product
// (or reduction) loads its accumulator. So values are never materialised
// between the ops of a body, and each is computed once per index.
//
// A kernel gets one pointer per distinct buffer: a result the memory plan
// writes over an operand (an optimizer update in place) is loaded and
// stored through one pointer, so every pointer stays `noalias`. Each
// iteration computes all its results before it stores any.
//
//===----------------------------------------------------------------------===//
#include "codegen/KernelBuilder.h"
#include "codegen/OpLowering.h"
#include "ir/IndexMap.h"
#include "ir/OpRules.h"
#include "ir/ops/Scalar.h"
#include <cmath>
#include <functional>

using namespace kiln;
using namespace llvm;

namespace {

/// An element of a value: its flat index, its index per axis where the
/// loop knows it without division (a GEMM epilogue's row and column), and
/// in a GEMM epilogue its offset in the block of the product the GEMM
/// passed (Kernel::product).
struct Index {
  Value *flat;
  SmallVector<Value *, 4> axes;
  Value *product = nullptr;
};

/// What a rows kernel knows of the row it computes: each softmax's max and
/// sum of exponentials, and each one_hot's label.
struct RowContext {
  DenseMap<const Node *, std::pair<Value *, Value *>> stats;
  DenseMap<const Node *, Value *> labels;
};

class BodyEmitter {
public:
  /// argBuf: the kernel buffer of each arg; productBuf: that of the GEMM's C
  /// (or the reduction's accumulator); row: a rows kernel's row.
  BodyEmitter(KernelBuilder &kb, ArrayRef<int> argBuf, int productBuf = -1,
              const RowContext *row = nullptr)
      : kb(kb), argBuf(argBuf), productBuf(productBuf), row(row) {}

  /// The value of body node x at element `at` of x's shape.
  Value *value(const Node *x, const Index &at) {
    auto key = std::make_pair(x, at.flat);
    if (Value *v = memo.lookup(key))
      return v;
    Value *v = compute(x, at);
    memo[key] = v;
    return v;
  }

private:
  Value *compute(const Node *x, const Index &at) {
    Kernel &k = kb.kernel();
    switch (x->op) {
    case Op::Arg:
      return kb.load(kb.elemType(*x), k.buf[argBuf[x->intAttr("index")]],
                     at.flat);
    case Op::MatMul:
    case Op::Conv2d:
      // A product in one of the kernel's buffers is read through it (one
      // pointer per buffer keeps them all noalias); one in the GEMM's tile
      // through the block pointer the GEMM passes. An epilogue reads it
      // only at the element it computes, so the index that reaches it is
      // the element's own.
      if (productBuf >= 0)
        return kb.loadF(k.buf[productBuf], at.flat);
      return kb.loadF(k.product, at.product);
    case Op::Sum:
    case Op::Mean:
    case Op::Max:
      return kb.loadF(k.buf[productBuf], at.flat);
    case Op::Constant:
      return kb.cf(x->floatAttr("value"));
    case Op::Softmax:
    case Op::LogSoftmax: {
      auto [m, sum] = row->stats.lookup(x);
      Value *z = kb.b().CreateFSub(value(x->operands[0], at), m);
      return x->op == Op::Softmax
                 ? kb.b().CreateFDiv(kb.unary(Intrinsic::exp, z), sum)
                 : kb.b().CreateFSub(z, kb.unary(Intrinsic::log, sum));
    }
    case Op::OneHot: {
      Value *hit = kb.b().CreateICmpEQ(
          at.axes[1], kb.b().CreateSExt(row->labels.lookup(x), kb.i64()));
      return kb.b().CreateSelect(hit, kb.cf(1), kb.cf(0));
    }
    case Op::Broadcast:
    case Op::Transpose:
    case Op::Slice:
    case Op::Reshape: {
      StridedMap map = *stridedMapOf(*x);
      // A row-major map (a reshape) reads the same flat index.
      if (map.base == 0 && map.strides == stridesOf(map.shape))
        return value(x->operands[0], {at.flat, {}});
      Value *off;
      if (at.axes.size() == map.shape.size()) {
        off = kb.c64(map.base);
        for (size_t d = 0; d < map.shape.size(); ++d)
          if (map.strides[d] != 0 && map.shape[d] != 1)
            off = kb.add(off, kb.mul(at.axes[d], map.strides[d]));
      } else {
        off = kb.stridedOffset(at.flat, map.shape, map.strides, map.base);
      }
      Index in{off, {}};
      if (x->operands[0]->type.rank() == 1)
        in.axes.push_back(off);
      return value(x->operands[0], in);
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
  ArrayRef<int> argBuf;
  int productBuf;
  const RowContext *row;
  DenseMap<std::pair<const Node *, Value *>, Value *> memo;
};

/// A fused kernel's buffers, each slot once: the results' first, then the
/// operands'.
struct Buffers {
  SmallVector<int64_t, 6> slots;
  SmallVector<int, 4> resultBuf, argBuf; ///< -1: a result nothing reads

  int of(int64_t slot) {
    for (size_t i = 0; i < slots.size(); ++i)
      if (slots[i] == slot)
        return i;
    slots.push_back(slot);
    return slots.size() - 1;
  }
  /// What sharing a kernel depends on besides the node's signature: which
  /// results and operands share a buffer.
  std::string key() const {
    std::string s = " bufs";
    for (int b : resultBuf)
      s += " " + std::to_string(b);
    s += " :";
    for (int b : argBuf)
      s += " " + std::to_string(b);
    return s;
  }
};

/// The operand slot a kernel reads: a transposed operand's is its source's.
int64_t operandSlot(KernelBuilder &kb, const Node *o) {
  return kb.storage(o) == Storage::Transposed ? kb.slot(o->operands[0])
                                              : kb.slot(o);
}

Buffers buffersOf(KernelBuilder &kb, const Node &n,
                  ArrayRef<int64_t> extraSlots = {}) {
  Buffers bufs;
  for (int64_t s : kb.resultSlots(n))
    bufs.resultBuf.push_back(s < 0 ? -1 : bufs.of(s));
  for (const Node *o : n.operands)
    bufs.argBuf.push_back(bufs.of(operandSlot(kb, o)));
  for (int64_t s : extraSlots)
    bufs.of(s);
  return bufs;
}

/// Computes every result at `at`, then stores them (skipping `skip`, the
/// product, which the GEMM already wrote).
void emitElement(KernelBuilder &kb, const Graph &body, const Buffers &bufs,
                 const Index &at, int productBuf = -1,
                 const Node *skip = nullptr) {
  BodyEmitter emit(kb, bufs.argBuf, productBuf);
  auto results = bodyResults(body);
  SmallVector<Value *, 4> values;
  for (size_t r = 0; r < results.size(); ++r)
    values.push_back(bufs.resultBuf[r] < 0 || results[r] == skip
                         ? nullptr
                         : emit.value(results[r], at));
  for (size_t r = 0; r < results.size(); ++r)
    if (values[r])
      kb.store(values[r], kb.kernel().buf[bufs.resultBuf[r]], at.flat);
}

/// True if the body reads through an index map other than a reshape's or a
/// one-element broadcast's: its kernel then loops over rows, so that the
/// map's arithmetic on the outer axes is done once per row.
bool readsByRows(const Node &n) {
  if (n.type.rank() < 2)
    return false;
  for (auto &np : n.body->nodes) {
    const Node &x = *np;
    if (x.op != Op::Broadcast && x.op != Op::Transpose && x.op != Op::Slice)
      continue;
    if (*numElements(x.operands[0]->type.shape) > 1)
      return true;
  }
  return false;
}

void lowerElementwiseKernel(KernelBuilder &kb, const Node &n) {
  Buffers bufs = buffersOf(kb, n);
  const Shape &shape = n.type.shape;
  int64_t count = *numElements(shape);
  if (!readsByRows(n)) {
    if (kb.beginKernel(n, bufs.slots.size(), "", /*unique=*/false,
                       KernelForm::Range, bufs.key())) {
      Kernel &k = kb.kernel();
      kb.loop(k.begin, k.end, [&](Value *i) {
        emitElement(kb, *n.body, bufs, {i, {}});
      });
    }
    kb.launch(bufs.slots, count, kElementGrain);
    return;
  }
  // Rows of the last axis: the outer indices once per row, the last one
  // the inner loop's.
  int64_t len = shape.back(), rows = count / std::max<int64_t>(1, len);
  Shape outer(shape.begin(), shape.end() - 1);
  if (kb.beginKernel(n, bufs.slots.size(), ".rows", /*unique=*/false,
                     KernelForm::Range, bufs.key())) {
    Kernel &k = kb.kernel();
    kb.loop(k.begin, k.end, [&](Value *r) {
      SmallVector<Value *, 4> axes = kb.unravel(r, outer);
      Value *base = kb.mul(r, len);
      kb.loop(len, [&](Value *j) {
        Index at{kb.add(base, j), axes};
        at.axes.push_back(j);
        emitElement(kb, *n.body, bufs, at);
      });
    });
  }
  kb.launch(bufs.slots, rows,
            std::max<int64_t>(1, kElementGrain / std::max<int64_t>(1, len)));
}

/// The outer operand a gemm body's matmul operand reads, and whether the
/// GEMM reads it transposed (a transpose in the body, or an operand the
/// plan keeps untransposed, or both, which cancel).
std::pair<const Node *, bool> productOperand(KernelBuilder &kb, const Node &n,
                                             const Node *x) {
  bool trans = false;
  if (x->op == Op::Transpose) {
    trans = true;
    x = x->operands[0];
  }
  const Node *o = n.operands[x->intAttr("index")];
  if (kb.storage(o) == Storage::Transposed) {
    trans = !trans;
    o = o->operands[0];
  }
  return {o, trans};
}

/// The slot a GEMM's product is in, as an extra buffer of its epilogue, if
/// it has one.
SmallVector<int64_t, 1> productSlots(int64_t slot) {
  if (slot < 0)
    return {};
  return {slot};
}

/// What an epilogue's body depends on besides its buffers: which one holds
/// the product (-1: the GEMM's tile).
std::string productKey(const Buffers &bufs, int productBuf) {
  return bufs.key() + " product " + std::to_string(productBuf);
}

void lowerGemmKernel(KernelBuilder &kb, const Node &n) {
  const Node *mm = nullptr;
  for (auto &np : n.body->nodes)
    if (np->op == Op::MatMul)
      mm = np.get();
  // Where the GEMM writes C (BufferPlan::productOf): a slot, or none (its
  // threads' tiles).
  int64_t cSlot = kb.plan().productOf[kb.nodeIndex(n)];
  Buffers bufs = buffersOf(kb, n, productSlots(cSlot));
  int productBuf = cSlot >= 0 ? bufs.of(cSlot) : -1;
  const int64_t M = mm->type.shape[0], N = mm->type.shape[1];
  const int64_t K = mm->operands[0]->type.shape[1];
  if (kb.beginKernel(n, bufs.slots.size(), ".epilogue", /*unique=*/false,
                     KernelForm::Block, productKey(bufs, productBuf))) {
    Kernel &k = kb.kernel();
    kb.loop(k.begin, k.end, [&](Value *i) {
      Value *row = kb.mul(i, N);
      Value *blockRow =
          kb.b().CreateMul(kb.b().CreateSub(i, k.begin), k.productLd);
      kb.loop(k.colBegin, k.colEnd, [&](Value *j) {
        Index at{kb.add(row, j), {i, j}};
        at.product = kb.add(blockRow, kb.b().CreateSub(j, k.colBegin));
        emitElement(kb, *n.body, bufs, at, productBuf, mm);
      });
    });
  }
  auto [a, ta] = productOperand(kb, n, mm->operands[0]);
  auto [w, tb] = productOperand(kb, n, mm->operands[1]);
  IRBuilder<> &eb = kb.entryBuilder();
  kb.launchGemm(bufs.slots,
                {kb.entrySlot(kb.slot(a)), kb.entrySlot(kb.slot(w)),
                 kb.entrySlotOrNull(cSlot), eb.getInt64(1), eb.getInt64(M),
                 eb.getInt64(N), eb.getInt64(K), eb.getInt32(ta | tb << 1),
                 eb.getInt64(M * K), eb.getInt64(0), eb.getInt64(M * N)});
}

/// A convolution (im2col, then a GEMM per image) whose epilogue computes
/// the results on each finished block of the product: rows n*O + o of
/// image n's channels, columns its pixels oh*OW + ow. The axes of each
/// element are known per row and per pixel, so a bias's broadcast reads
/// its channel with no division per element.
void lowerConvKernel(KernelBuilder &kb, const Node &n) {
  const Node *conv = nullptr;
  for (auto &np : n.body->nodes)
    if (np->op == Op::Conv2d)
      conv = np.get();
  const Shape &y = conv->type.shape;
  const int64_t O = y[1], P = y[2] * y[3];
  int64_t i = kb.nodeIndex(n), ySlot = kb.plan().productOf[i];
  auto operand = [&](int k) {
    return kb.slot(n.operands[conv->operands[k]->intAttr("index")]);
  };
  auto mmArgs = lowerConvolution(kb, n, *conv, operand(0), operand(1),
                                 kb.plan().colsOf[i], ySlot);
  Buffers bufs = buffersOf(kb, n, productSlots(ySlot));
  int productBuf = ySlot >= 0 ? bufs.of(ySlot) : -1;
  if (kb.beginKernel(n, bufs.slots.size(), ".epilogue", /*unique=*/false,
                     KernelForm::Block, productKey(bufs, productBuf))) {
    Kernel &k = kb.kernel();
    kb.loop(k.begin, k.end, [&](Value *r) {
      SmallVector<Value *, 4> image = kb.unravel(r, {y[0], O});
      Value *row = kb.mul(r, P);
      Value *blockRow =
          kb.b().CreateMul(kb.b().CreateSub(r, k.begin), k.productLd);
      kb.loop(k.colBegin, k.colEnd, [&](Value *j) {
        Index at{kb.add(row, j), image};
        at.axes.append(kb.unravel(j, {y[2], y[3]}));
        at.product = kb.add(blockRow, kb.b().CreateSub(j, k.colBegin));
        emitElement(kb, *n.body, bufs, at, productBuf, conv);
      });
    });
  }
  kb.launchGemm(bufs.slots, mmArgs);
}

/// A reduction whose operand is computed as it is read (its prologue), and
/// whose results are computed from each output as it is finished (its
/// epilogue), in a plain reduction's loops (ReductionLoops).
void lowerReduceKernel(KernelBuilder &kb, const Node &n) {
  const Node *red = nullptr;
  for (auto &np : n.body->nodes)
    if (np->info().flags & Reduction)
      red = np.get();
  const Node *src = red->operands[0];
  auto results = bodyResults(*n.body);
  int64_t accSlot = kb.plan().productOf[kb.nodeIndex(n)];
  Buffers bufs = buffersOf(kb, n, {accSlot});
  int accBuf = bufs.of(accSlot);
  ReductionLoops loops(src->type.shape, cantFail(reducedAxes(*red)), red->op,
                       *numElements(red->type.shape));
  // Where it accumulates is part of what the kernel depends on.
  std::string variant = bufs.key() + " acc " + std::to_string(accBuf);
  if (kb.beginKernel(n, bufs.slots.size(), "", /*unique=*/false,
                     KernelForm::Range, variant))
    loops.emit(
        kb, kb.kernel().buf[accBuf],
        [&](Value *at, ArrayRef<Value *> rowCol) {
          return BodyEmitter(kb, bufs.argBuf)
              .value(src, {at, {rowCol.begin(), rowCol.end()}});
        },
        [&](Value *o) {
          Index at{o, {}};
          if (red->type.rank() == 1)
            at.axes.push_back(o);
          emitElement(kb, *n.body, bufs, at, accBuf, red);
        });
  kb.launch(bufs.slots, *numElements(red->type.shape), loops.grain());
}

/// A loop over the rows of an [R, C] domain. Each row first finds what
/// its row ops need: each one_hot's and cross_entropy's label, each
/// softmax's max and sum of exponentials (two passes over its operand,
/// computed as it is read), and each cross_entropy's term; then one pass
/// over the columns computes and stores the [R, C] results. A kernel with a
/// cross_entropy result runs its rows in order on one thread and sums the
/// terms as the cross_entropy kernel does (Loss.cpp), so the loss does not
/// depend on the thread count; others split rows across threads.
void lowerRowsKernel(KernelBuilder &kb, const Node &n) {
  const Graph &body = *n.body;
  const Shape *domain = rowsDomain(body);
  bool checks = false, scalar = false;
  for (auto &np : body.nodes)
    checks |= np->op == Op::OneHot || np->op == Op::CrossEntropy;
  const int64_t R = (*domain)[0], C = (*domain)[1];
  auto results = bodyResults(body);
  for (const Node *r : results)
    scalar |= r->op == Op::CrossEntropy;
  Buffers bufs = buffersOf(kb, n);
  if (kb.beginKernel(n, bufs.slots.size(), "", /*unique=*/checks,
                     KernelForm::Range, bufs.key())) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    DenseMap<const Node *, AllocaInst *> losses;
    for (auto &np : body.nodes)
      if (np->op == Op::CrossEntropy)
        losses[np.get()] = kb.var(kb.f32(), kb.cf(0));
    auto argAt = [&](const Node *a) {
      return k.buf[bufs.argBuf[a->intAttr("index")]];
    };
    kb.loop(k.begin, k.end, [&](Value *r) {
      Value *rowBase = kb.mul(r, C);
      auto at = [&](Value *j) { return Index{kb.add(rowBase, j), {r, j}}; };
      RowContext ctx;
      // The value of x at column j, in a loop of its own.
      auto valueAt = [&](const Node *x, Value *j) {
        return BodyEmitter(kb, bufs.argBuf, -1, &ctx).value(x, at(j));
      };
      for (auto &np : body.nodes) {
        const Node &x = *np;
        if (x.op != Op::OneHot && x.op != Op::CrossEntropy &&
            x.op != Op::Softmax && x.op != Op::LogSoftmax)
          continue;
        if (x.op == Op::OneHot || x.op == Op::CrossEntropy) {
          const Node *ids = x.operands[x.op == Op::OneHot ? 0 : 1];
          Value *label = kb.load(kb.i32(), argAt(ids), r);
          kb.checkIndex(label, C, n);
          ctx.labels[&x] = label;
          if (x.op == Op::OneHot)
            continue;
        }
        const Node *a = x.operands[0];
        AllocaInst *mx = kb.var(kb.f32(), kb.cf(-INFINITY));
        kb.loop(C, [&](Value *j) {
          Value *v = valueAt(a, j);
          kb.set(mx,
                 b.CreateSelect(b.CreateFCmpOLT(kb.get(mx), v), v, kb.get(mx)));
        });
        Value *m = kb.get(mx);
        AllocaInst *sum = kb.var(kb.f32(), kb.cf(0));
        AllocaInst *all = kb.var(kb.f32(), kb.cf(0));
        kb.loop(C, [&](Value *j) {
          Value *v = valueAt(a, j);
          kb.set(sum, kb.reassocAdd(kb.get(sum), kb.unary(Intrinsic::exp,
                                                          b.CreateFSub(v, m))));
          kb.set(all, kb.reassocAdd(kb.get(all), v));
        });
        ctx.stats[&x] = {m, kb.get(sum)};
        if (x.op != Op::CrossEntropy)
          continue;
        float eps = float(x.floatAttr("label_smoothing"));
        Value *lse = b.CreateFAdd(m, kb.unary(Intrinsic::log, kb.get(sum)));
        Value *picked =
            valueAt(a, b.CreateSExt(ctx.labels.lookup(&x), kb.i64()));
        Value *loss = b.CreateFAdd(
            b.CreateFMul(kb.cf(1 - eps), b.CreateFSub(lse, picked)),
            b.CreateFMul(
                kb.cf(eps),
                b.CreateFSub(lse, b.CreateFDiv(kb.get(all), kb.cf(float(C))))));
        kb.set(losses[&x], b.CreateFAdd(kb.get(losses[&x]), loss));
      }
      kb.loop(C, [&](Value *j) {
        BodyEmitter emit(kb, bufs.argBuf, -1, &ctx);
        SmallVector<std::pair<Value *, int>, 4> values;
        for (size_t i = 0; i < results.size(); ++i)
          if (results[i]->op != Op::CrossEntropy && bufs.resultBuf[i] >= 0)
            values.push_back({emit.value(results[i], at(j)), i});
        for (auto [v, i] : values)
          kb.store(v, k.buf[bufs.resultBuf[i]], kb.add(rowBase, j));
      });
    });
    for (size_t i = 0; i < results.size(); ++i)
      if (results[i]->op == Op::CrossEntropy && bufs.resultBuf[i] >= 0)
        kb.store(b.CreateFDiv(kb.get(losses[results[i]]), kb.cf(float(R))),
                 k.buf[bufs.resultBuf[i]], kb.c64(0));
  }
  kb.launch(bufs.slots, R,
            scalar ? R : std::max<int64_t>(1, kElementGrain / C));
}

void lowerFused(KernelBuilder &kb, const Node &n) {
  std::string kind = n.stringAttr("kind");
  if (kind == "rows") {
    lowerRowsKernel(kb, n);
    return;
  }
  if (kind == "gemm")
    lowerGemmKernel(kb, n);
  else if (kind == "conv")
    lowerConvKernel(kb, n);
  else if (kind == "reduce")
    lowerReduceKernel(kb, n);
  else
    lowerElementwiseKernel(kb, n);
}

} // namespace

void kiln::registerFusedLowerings(LoweringTable &t) {
  t[size_t(Op::Fused)].lower = lowerFused;
  // Args exist only inside bodies, which lowerFused reads itself; a fused
  // node's kernel writes its further results.
  t[size_t(Op::Arg)].aliasOnly = true;
  t[size_t(Op::Result)].aliasOnly = true;
}
