//===- LowerToLLVM.cpp - Graph IR to LLVM IR loop nests -------------------===//
//
// Every op lowers to a kernel: a body function that computes iterations
// [begin, end) of the op's outermost parallel loop from noalias buffer
// pointers, and a task wrapper that loads those pointers from the slot table
// and calls the body (which LLVM inlines, keeping the noalias facts as
// scopes). The entry point calls each task over its whole range, directly
// or through the runtime's parallel_for. Inner loops are written as plain
// unit-stride loops over contiguous memory so LLVM's loop vectorizer takes
// them; reductions carry `reassoc` so they vectorize too.
//
//===----------------------------------------------------------------------===//
#include "codegen/Codegen.h"
#include "codegen/Runtime.h"
#include "ir/OpRules.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/IR/MDBuilder.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include <cmath>

using namespace kiln;
using namespace llvm;

//===----------------------------------------------------------------------===//
// Buffer planning
//===----------------------------------------------------------------------===//

namespace {

/// True if n swaps the last two axes and leaves the others.
bool isLast2Transpose(const Node &n) {
  if (n.op != Op::Transpose)
    return false;
  auto perm = n.intsAttr("perm");
  int64_t r = perm.size();
  if (r < 2)
    return false;
  for (int64_t i = 0; i + 2 < r; ++i)
    if (perm[i] != i)
      return false;
  return perm[r - 2] == r - 1 && perm[r - 1] == r - 2;
}

int64_t elems(const Node &n) { return *numElements(n.type.shape); }

} // namespace

/// A value that elementwise users may read without a buffer of its own: a
/// float constant (an immediate) or a broadcast of one element (its
/// operand's element 0).
static bool isFoldedConstantCandidate(const Node &n) {
  if (n.op == Op::Constant)
    return n.type.dtype == DType::F32;
  return n.op == Op::Broadcast &&
         *numElements(n.operands[0]->type.shape) == 1 &&
         !(n.operands[0]->op == Op::Constant);
}

BufferPlan kiln::planBuffers(const Graph &g) {
  DenseMap<const Node *, size_t> index;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    index[g.nodes[i].get()] = i;
  // A last-two-axes transpose read only by matmuls is read in place.
  std::vector<bool> inPlace(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i)
    inPlace[i] = isLast2Transpose(*g.nodes[i]);
  for (auto &n : g.nodes)
    for (Node *o : n->operands)
      if (n->op != Op::MatMul)
        inPlace[index[o]] = false;
  for (const Node *root : g.rootValues())
    inPlace[index[root]] = false;
  // A float constant read only by elementwise ops is folded into their
  // loops as an immediate: it has no buffer and no kernel.
  std::vector<bool> folded(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i)
    folded[i] = isFoldedConstantCandidate(*g.nodes[i]);
  for (auto &n : g.nodes)
    if (!(n->info().flags & Elementwise))
      for (Node *o : n->operands)
        folded[index[o]] = false;
  for (const Node *root : g.rootValues())
    folded[index[root]] = false;

  BufferPlan plan;
  plan.slotOf.assign(g.nodes.size(), -1);
  plan.scratchOf.assign(g.nodes.size(), -1);
  // Per slot: the first and last node (graph order) during which it holds
  // a value; the roots' slots end at nodes.size(), after the last node.
  std::vector<std::pair<int64_t, int64_t>> live;
  auto newSlot = [&](int64_t leaf, int64_t bytes, int64_t node) {
    plan.leafOf.push_back(leaf);
    plan.offset.push_back(-1);
    plan.bytes.push_back(leaf >= 0 ? 0 : (bytes + 63) / 64 * 64);
    live.push_back({node, node});
    return int64_t(plan.leafOf.size() - 1);
  };
  const int64_t N = g.nodes.size();
  for (int64_t i = 0; i < N; ++i) {
    const Node &n = *g.nodes[i];
    if (inPlace[i] || folded[i])
      continue;
    if (n.info().flags & Leaf && n.op != Op::Constant) {
      plan.slotOf[i] = newSlot(i, 0, i);
    } else if (n.op == Op::Reshape || n.op == Op::StopGradient) {
      plan.slotOf[i] = plan.slotOf[index[n.operands[0]]];
    } else {
      plan.slotOf[i] = newSlot(-1, elems(n) * 4, i);
    }
    if (n.op == Op::Conv2d) {
      const Shape &w = n.operands[1]->type.shape;
      int64_t cols = n.type.shape[0] * w[1] * w[2] * w[3] * n.type.shape[2] *
                     n.type.shape[3];
      plan.scratchOf[i] = newSlot(-1, cols * 4, i);
    }
  }

  // A slot is live from the node that writes it to the last node that reads
  // it, through views and in-place transposes; roots to the end of the step,
  // when they are copied out. Nodes run one after another in graph order.
  auto slotRead = [&](const Node *o) {
    int64_t s = plan.slotOf[index[o]];
    return s >= 0 ? s : plan.slotOf[index[o->operands[0]]];
  };
  for (int64_t i = 0; i < N; ++i)
    for (const Node *o : g.nodes[i]->operands) {
      if (folded[index[o]]) {
        if (o->op == Op::Constant)
          continue;
        o = o->operands[0]; // a folded broadcast reads its operand
      }
      int64_t s = slotRead(o);
      live[s].second = std::max(live[s].second, i);
    }
  for (const Node *root : g.rootValues())
    live[slotRead(root)].second = N;

  // Updates: a value held in an updated leaf's buffer is staged first.
  DenseMap<int64_t, int64_t> leafSlotOf; // leaf node -> slot
  for (int64_t i = 0; i < N; ++i)
    if (g.nodes[i]->info().flags & Leaf && plan.slotOf[i] >= 0)
      leafSlotOf[i] = plan.slotOf[i];
  llvm::DenseSet<int64_t> updatedSlots;
  std::vector<std::pair<int64_t, int64_t>> updates; // value slot, leaf slot
  for (const StateUpdate &u : g.updates) {
    const Node *leaf = g.findLeaf(Op::Param, u.name);
    if (!leaf)
      leaf = g.findLeaf(Op::State, u.name);
    int64_t to = leafSlotOf.lookup(index[leaf]);
    updates.push_back({slotRead(u.value), to});
    updatedSlots.insert(to);
  }
  std::vector<BufferPlan::Copy> finals;
  for (auto [from, to] : updates) {
    int64_t bytes =
        int64_t(*numElements(g.nodes[plan.leafOf[to]]->type.shape)) *
        int64_t(dtypeSize(g.nodes[plan.leafOf[to]]->type.dtype));
    if (from == to)
      continue;
    if (plan.leafOf[from] >= 0 && updatedSlots.contains(from)) {
      int64_t staged = newSlot(-1, bytes, N);
      live[staged].second = N;
      plan.endCopies.push_back({from, staged, bytes});
      from = staged;
    }
    finals.push_back({from, to, bytes});
  }
  plan.endCopies.insert(plan.endCopies.end(), finals.begin(), finals.end());

  // First fit, in the order slots are written: a region whose last reader
  // is node i is free from node i + 1 on, so no node writes over its own
  // operands.
  struct Region {
    int64_t begin, end, last;
  };
  std::vector<Region> taken; // sorted by begin
  for (size_t sl = 0; sl < plan.numSlots(); ++sl) {
    if (plan.leafOf[sl] >= 0)
      continue;
    auto [first, last] = live[sl];
    llvm::erase_if(
        taken, [&, first = first](const Region &r) { return r.last < first; });
    int64_t at = 0;
    auto pos = taken.begin();
    for (; pos != taken.end() && pos->begin < at + plan.bytes[sl]; ++pos)
      at = std::max(at, pos->end);
    taken.insert(pos, {at, at + plan.bytes[sl], last});
    plan.offset[sl] = at;
    plan.workspaceBytes = std::max(plan.workspaceBytes, at + plan.bytes[sl]);
  }
  return plan;
}

//===----------------------------------------------------------------------===//
// Lowering
//===----------------------------------------------------------------------===//

namespace {

/// A kernel body being built: its function and arguments.
struct Body {
  Function *fn = nullptr;
  SmallVector<Value *, 4> buf; ///< one pointer per slot, output first
  SmallVector<int64_t, 4> slots;
  Value *rt = nullptr, *begin = nullptr, *end = nullptr;
};

class Lowering {
public:
  Lowering(const Graph &g, const BufferPlan &plan, Module &m,
           const LoweringOptions &opts)
      : g(g), plan(plan), m(m), ctx(m.getContext()), b(ctx), eb(ctx),
        opts(opts) {
    f32 = b.getFloatTy();
    i32 = b.getInt32Ty();
    i64 = b.getInt64Ty();
    ptr = b.getPtrTy();
    for (size_t i = 0; i < g.nodes.size(); ++i)
      index[g.nodes[i].get()] = i;
  }

  Error run();

private:
  // Node emitters, one per family.
  void emitElementwise(const Node &n);
  void emitGather(const Node &n);
  void emitPad(const Node &n);
  void emitConcat(const Node &n);
  void emitReduce(const Node &n);
  void emitMatMul(const Node &n);
  /// Calls the runtime GEMM, with this module's micro-kernels, from the
  /// entry point: args are kiln_rt_matmul's after `rt` and before the
  /// kernels.
  void callMatMul(ArrayRef<Value *> args);
  void emitIm2col(const Node &n, int64_t outSlot, int64_t size, int64_t stride,
                  int64_t pad, double padValue);
  void emitConv2d(const Node &n);
  void emitFold(const Node &n);
  void emitPool(const Node &n);
  void emitSoftmax(const Node &n);
  void emitBatchNorm(const Node &n);
  void emitLayerNorm(const Node &n);
  void emitEmbedding(const Node &n);
  void emitOneHot(const Node &n);
  void emitCrossEntropy(const Node &n);
  void emitPairLoss(const Node &n);

  /// The scalar function of an elementwise op (dropout included).
  Value *scalar(const Node &n, ArrayRef<Value *> args, Value *flat,
                Value *dropoutKey);

  // Kernels.
  Body beginKernel(const Node &n, ArrayRef<int64_t> slots,
                   const Twine &suffix = "");
  /// Ends the body and runs it over [0, count) from the entry point, on the
  /// thread pool if count is at least two grains.
  void endKernel(Body &k, int64_t count, int64_t grain);
  int64_t slot(const Node *n) const { return plan.slotOf[index.lookup(n)]; }
  int64_t slot(const Node &n) const { return slot(&n); }
  int64_t nodeIndex(const Node &n) const { return index.lookup(&n); }

  // IR helpers for kernel bodies.
  Value *c64(int64_t v) { return b.getInt64(v); }
  Value *cf(double v) { return ConstantFP::get(f32, v); }
  Type *elemType(const Node &n) {
    return n.type.dtype == DType::I32 ? (Type *)i32 : (Type *)f32;
  }
  Value *load(Type *t, Value *base, Value *idx) {
    return b.CreateLoad(t, b.CreateInBoundsGEP(t, base, idx));
  }
  Value *loadF(Value *base, Value *idx) { return load(f32, base, idx); }
  void store(Value *v, Value *base, Value *idx) {
    b.CreateStore(v, b.CreateInBoundsGEP(v->getType(), base, idx));
  }
  Value *add(Value *x, Value *y) { return b.CreateAdd(x, y, "", true, true); }
  Value *mul(Value *x, Value *y) { return b.CreateMul(x, y, "", true, true); }
  Value *mul(Value *x, int64_t y) { return mul(x, c64(y)); }
  /// A float sum that LLVM may reassociate (so the loop vectorizes).
  Value *reassocAdd(Value *x, Value *y) {
    auto *i = cast<Instruction>(b.CreateFAdd(x, y));
    i->setHasAllowReassoc(true);
    return i;
  }
  /// for (i = lo; i < hi; ++i) body(i)
  void loop(Value *lo, Value *hi, function_ref<void(Value *)> body);
  void loop(int64_t n, function_ref<void(Value *)> body) {
    loop(c64(0), c64(n), body);
  }
  /// A stack variable (promoted to a register by SROA).
  AllocaInst *var(Type *t, Value *init);
  Value *get(AllocaInst *v) { return b.CreateLoad(v->getAllocatedType(), v); }
  void set(AllocaInst *v, Value *x) { b.CreateStore(x, v); }
  /// Indices of `flat` in a row-major `shape`.
  SmallVector<Value *, 4> unravel(Value *flat, ArrayRef<int64_t> shape);
  Value *unary(Intrinsic::ID id, Value *x) {
    return b.CreateUnaryIntrinsic(id, x);
  }
  Value *libm(StringRef name, Value *x);
  Value *isNaN(Value *x) { return b.CreateFCmpUNO(x, x); }
  /// The input position of window offset (kh, kw) at output (oh, ow), and
  /// whether it lies inside the H x W image (not in the padding).
  struct WindowPos {
    Value *ih, *iw, *inside;
  };
  WindowPos window(Value *oh, Value *ow, Value *kh, Value *kw, int64_t stride,
                   int64_t pad, int64_t H, int64_t W) {
    Value *ih = b.CreateAdd(b.CreateSub(mul(oh, stride), c64(pad)), kh);
    Value *iw = b.CreateAdd(b.CreateSub(mul(ow, stride), c64(pad)), kw);
    Value *inside = b.CreateAnd(
        b.CreateAnd(b.CreateICmpSGE(ih, c64(0)), b.CreateICmpSLT(ih, c64(H))),
        b.CreateAnd(b.CreateICmpSGE(iw, c64(0)), b.CreateICmpSLT(iw, c64(W))));
    return {ih, iw, inside};
  }
  /// The pointer in slot s, loaded in the entry point.
  Value *entrySlot(int64_t s) {
    return eb.CreateLoad(
        ptr, eb.CreateConstInBoundsGEP1_64(ptr, entry->getArg(0), s));
  }

  /// PyTorch's NaN-propagating max: isnan(x) || x > acc ? x : acc, unless
  /// acc is already NaN.
  Value *nanMax(Value *acc, Value *x) {
    Value *take = b.CreateOr(isNaN(x), b.CreateFCmpOGT(x, acc));
    return b.CreateSelect(isNaN(acc), acc, b.CreateSelect(take, x, acc));
  }

  const Graph &g;
  const BufferPlan &plan;
  Module &m;
  LLVMContext &ctx;
  IRBuilder<> b;  ///< kernel bodies
  IRBuilder<> eb; ///< the entry point
  const LoweringOptions &opts;
  Type *f32, *i32, *i64, *ptr;
  Function *entry = nullptr;
  DenseMap<const Node *, size_t> index;
  FunctionCallee parallelFor, matmul, fail, dropoutKey;
};

void Lowering::loop(Value *lo, Value *hi, function_ref<void(Value *)> body) {
  Function *f = b.GetInsertBlock()->getParent();
  BasicBlock *pre = b.GetInsertBlock();
  BasicBlock *bodyBB = BasicBlock::Create(ctx, "loop", f);
  BasicBlock *exit = BasicBlock::Create(ctx, "loop.end", f);
  b.CreateCondBr(b.CreateICmpSLT(lo, hi), bodyBB, exit);
  b.SetInsertPoint(bodyBB);
  PHINode *i = b.CreatePHI(i64, 2, "i");
  i->addIncoming(lo, pre);
  body(i);
  Value *next = add(i, c64(1));
  i->addIncoming(next, b.GetInsertBlock());
  b.CreateCondBr(b.CreateICmpSLT(next, hi), bodyBB, exit);
  b.SetInsertPoint(exit);
}

AllocaInst *Lowering::var(Type *t, Value *init) {
  Function *f = b.GetInsertBlock()->getParent();
  IRBuilder<> at(&f->getEntryBlock(), f->getEntryBlock().begin());
  AllocaInst *a = at.CreateAlloca(t);
  set(a, init);
  return a;
}

SmallVector<Value *, 4> Lowering::unravel(Value *flat,
                                          ArrayRef<int64_t> shape) {
  SmallVector<Value *, 4> idx(shape.size());
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) {
      idx[d] = c64(0);
      continue;
    }
    idx[d] = d == 0 ? flat : b.CreateURem(flat, c64(shape[d]));
    if (d > 0)
      flat = b.CreateUDiv(flat, c64(shape[d]));
  }
  return idx;
}

Value *Lowering::libm(StringRef name, Value *x) {
  FunctionCallee fc = m.getOrInsertFunction(name, f32, f32);
  auto *fn = cast<Function>(fc.getCallee());
  fn->setDoesNotAccessMemory();
  fn->setDoesNotThrow();
  fn->setWillReturn();
  return b.CreateCall(fc, x);
}

Body Lowering::beginKernel(const Node &n, ArrayRef<int64_t> slots,
                           const Twine &suffix) {
  std::string name =
      ("k" + Twine(nodeIndex(n)) + "." + n.info().mnemonic + suffix).str();
  SmallVector<Type *, 8> params(slots.size(), ptr);
  params.append({ptr, i64, i64});
  auto *fty = FunctionType::get(b.getVoidTy(), params, false);
  Body k;
  k.fn = Function::Create(fty, Function::InternalLinkage, name + ".body", m);
  k.fn->addFnAttr(Attribute::AlwaysInline);
  k.fn->addFnAttr(Attribute::NoUnwind);
  for (size_t i = 0; i < slots.size(); ++i) {
    k.fn->addParamAttr(i, Attribute::NoAlias);
    k.fn->getArg(i)->setName(i == 0 ? "out" : "in" + Twine(i - 1));
    k.buf.push_back(k.fn->getArg(i));
  }
  k.slots.assign(slots.begin(), slots.end());
  k.rt = k.fn->getArg(slots.size());
  k.begin = k.fn->getArg(slots.size() + 1);
  k.end = k.fn->getArg(slots.size() + 2);
  k.rt->setName("rt");
  k.begin->setName("begin");
  k.end->setName("end");
  b.SetInsertPoint(BasicBlock::Create(ctx, "entry", k.fn));
  return k;
}

void Lowering::endKernel(Body &k, int64_t count, int64_t grain) {
  b.CreateRetVoid();
  // The task: void name(ptr bufs, ptr rt, i64 begin, i64 end).
  auto *taskTy = FunctionType::get(b.getVoidTy(), {ptr, ptr, i64, i64}, false);
  StringRef bodyName = k.fn->getName();
  auto *task = Function::Create(taskTy, Function::InternalLinkage,
                                bodyName.drop_back(5), m);
  task->addFnAttr(Attribute::NoUnwind);
  IRBuilder<> tb(BasicBlock::Create(ctx, "entry", task));
  SmallVector<Value *, 8> args;
  for (int64_t s : k.slots)
    args.push_back(tb.CreateLoad(
        ptr, tb.CreateConstInBoundsGEP1_64(ptr, task->getArg(0), s)));
  args.append({task->getArg(1), task->getArg(2), task->getArg(3)});
  tb.CreateCall(k.fn, args);
  tb.CreateRetVoid();
  if (count <= 0)
    return;
  Value *bufs = entry->getArg(0), *rt = entry->getArg(1);
  if (count < 2 * grain)
    eb.CreateCall(task, {bufs, rt, eb.getInt64(0), eb.getInt64(count)});
  else
    eb.CreateCall(parallelFor,
                  {rt, task, bufs, eb.getInt64(count), eb.getInt64(grain)});
}

/// Elements per task chunk for simple per-element loops.
constexpr int64_t kElementGrain = 1 << 15;

//===-- Elementwise ------------------------------------------------------===//

Value *Lowering::scalar(const Node &n, ArrayRef<Value *> a, Value *flat,
                        Value *dropoutKey) {
  Value *x = a.empty() ? nullptr : a[0];
  Value *zero = cf(0), *one = cf(1);
  switch (n.op) {
  case Op::Constant:
    return n.type.dtype == DType::I32
               ? (Value *)b.getInt32(int32_t(n.floatAttr("value")))
               : cf(n.floatAttr("value"));
  case Op::Neg:
    return b.CreateFNeg(x);
  case Op::Exp:
    return unary(Intrinsic::exp, x);
  case Op::Log:
    return unary(Intrinsic::log, x);
  case Op::Sqrt:
    return unary(Intrinsic::sqrt, x);
  case Op::Abs:
    return unary(Intrinsic::fabs, x);
  case Op::Tanh:
    return libm("tanhf", x);
  case Op::Sigmoid:
    return b.CreateFDiv(
        one, b.CreateFAdd(one, unary(Intrinsic::exp, b.CreateFNeg(x))));
  case Op::Relu: // a > 0 || isnan(a) ? a : 0
    return b.CreateSelect(b.CreateFCmpUGT(x, zero), x, zero);
  case Op::LeakyRelu:
    return b.CreateSelect(b.CreateFCmpOGE(x, zero), x,
                          b.CreateFMul(cf(n.floatAttr("slope")), x));
  case Op::Elu:
    return b.CreateSelect(
        b.CreateFCmpOGT(x, zero), x,
        b.CreateFMul(cf(n.floatAttr("alpha")), libm("expm1f", x)));
  case Op::Gelu: {
    Value *phi =
        b.CreateFAdd(one, libm("erff", b.CreateFMul(x, cf(M_SQRT1_2))));
    return b.CreateFMul(b.CreateFMul(cf(0.5), x), phi);
  }
  case Op::Softplus:
    return b.CreateSelect(b.CreateFCmpOGT(x, cf(20)), x,
                          libm("log1pf", unary(Intrinsic::exp, x)));
  case Op::Erf:
    return libm("erff", x);
  case Op::Step:
    return b.CreateSelect(b.CreateFCmpOGT(x, zero), one, zero);
  case Op::Add:
    return b.CreateFAdd(x, a[1]);
  case Op::Sub:
    return b.CreateFSub(x, a[1]);
  case Op::Mul:
    return b.CreateFMul(x, a[1]);
  case Op::Div:
    return b.CreateFDiv(x, a[1]);
  case Op::Pow:
    return b.CreateBinaryIntrinsic(Intrinsic::pow, x, a[1]);
  case Op::Maximum:
    return b.CreateSelect(b.CreateOr(isNaN(x), b.CreateFCmpOGT(x, a[1])), x,
                          a[1]);
  case Op::Minimum:
    return b.CreateSelect(b.CreateOr(isNaN(x), b.CreateFCmpOLT(x, a[1])), x,
                          a[1]);
  case Op::Equal:
    return b.CreateSelect(b.CreateFCmpOEQ(x, a[1]), one, zero);
  case Op::Dropout: {
    // u = (splitmix64(key ^ i) >> 11) * 2^-53, as the interpreter draws it
    // (ir/ops/Network.cpp), written out in IR so the loop vectorizes.
    auto mixStep = [&](Value *z, unsigned shift, uint64_t mulBy) {
      Value *s = b.CreateXor(z, b.CreateLShr(z, shift));
      return mulBy ? b.CreateMul(s, b.getInt64(mulBy)) : s;
    };
    Value *z = b.CreateAdd(b.CreateXor(dropoutKey, flat),
                           b.getInt64(0x9e3779b97f4a7c15ull));
    z = mixStep(z, 30, 0xbf58476d1ce4e5b9ull);
    z = mixStep(z, 27, 0x94d049bb133111ebull);
    z = mixStep(z, 31, 0);
    Value *u =
        b.CreateFMul(b.CreateUIToFP(b.CreateLShr(z, 11), b.getDoubleTy()),
                     ConstantFP::get(b.getDoubleTy(), 0x1.0p-53));
    double p = n.floatAttr("p");
    Value *kept = b.CreateFMul(x, cf(float(1 / (1 - p))));
    return b.CreateSelect(
        b.CreateFCmpOLT(u, ConstantFP::get(b.getDoubleTy(), p)), zero, kept);
  }
  default:
    llvm_unreachable("not an elementwise op");
  }
}

void Lowering::emitElementwise(const Node &n) {
  // Folded operands (planBuffers gave them no slot): constants are
  // immediates, one-element broadcasts read their operand's element 0.
  SmallVector<int64_t, 4> slots{slot(n)};
  SmallVector<int, 2> bufOf; // operand -> index into k.buf, or -1
  SmallVector<bool, 2> splat;
  for (const Node *o : n.operands) {
    bool immediate = o->op == Op::Constant && slot(o) < 0;
    bool scalar = o->op == Op::Broadcast && slot(o) < 0;
    bufOf.push_back(immediate ? -1 : int(slots.size()));
    splat.push_back(scalar);
    if (!immediate)
      slots.push_back(scalar ? slot(o->operands[0]) : slot(o));
  }
  bool identity = n.op == Op::Dropout &&
                  (n.stringAttr("mode") == "eval" || n.floatAttr("p") == 0);
  Body k = beginKernel(n, slots);
  Value *key = nullptr;
  if (n.op == Op::Dropout && !identity)
    key = b.CreateCall(dropoutKey, {k.rt, c64(n.intAttr("seed"))});
  loop(k.begin, k.end, [&](Value *i) {
    SmallVector<Value *, 2> args;
    for (size_t o = 0; o < n.operands.size(); ++o)
      args.push_back(bufOf[o] < 0
                         ? cf(n.operands[o]->floatAttr("value"))
                         : load(elemType(*n.operands[o]), k.buf[bufOf[o]],
                                splat[o] ? c64(0) : i));
    store(identity ? args[0] : scalar(n, args, i, key), k.buf[0], i);
  });
  endKernel(k, elems(n), kElementGrain);
}

//===-- Data movement ----------------------------------------------------===//

/// out[i] = in[base + sum(idx(i) * strides)]: broadcast, transpose, slice.
void Lowering::emitGather(const Node &n) {
  const Shape &out = n.type.shape;
  const Shape &in = n.operands[0]->type.shape;
  Shape inStrides = stridesOf(in), strides(out.size(), 0);
  int64_t base = 0;
  if (n.op == Op::Broadcast) {
    size_t lead = out.size() - in.size();
    for (size_t i = 0; i < in.size(); ++i)
      strides[lead + i] = in[i] == 1 ? 0 : inStrides[i];
  } else if (n.op == Op::Transpose) {
    auto perm = n.intsAttr("perm");
    for (size_t i = 0; i < perm.size(); ++i)
      strides[i] = inStrides[perm[i]];
  } else { // slice
    auto begin = n.intsAttr("begin"), step = n.intsAttr("step");
    for (size_t i = 0; i < in.size(); ++i) {
      base += begin[i] * inStrides[i];
      strides[i] = step[i] * inStrides[i];
    }
  }
  int64_t len = out.empty() ? 1 : out.back();
  int64_t rows = elems(n) / len, inner = out.empty() ? 0 : strides.back();
  ArrayRef<int64_t> outer =
      ArrayRef<int64_t>(out).drop_back(out.empty() ? 0 : 1);
  Type *t = elemType(n);
  Body k = beginKernel(n, {slot(n), slot(n.operands[0])});
  loop(k.begin, k.end, [&](Value *row) {
    Value *src = c64(base);
    auto idx = unravel(row, outer);
    for (size_t d = 0; d < outer.size(); ++d)
      if (strides[d] != 0)
        src = add(src, mul(idx[d], strides[d]));
    Value *dst = mul(row, len);
    loop(len, [&](Value *j) {
      store(load(t, k.buf[1], add(src, mul(j, inner))), k.buf[0], add(dst, j));
    });
  });
  endKernel(k, rows, std::max<int64_t>(1, kElementGrain / len));
}

/// pad as a gather: out[o] = in[(o - low) / (interior + 1)] where that is a
/// whole in-range index on every axis, else 0.
void Lowering::emitPad(const Node &n) {
  const Shape &out = n.type.shape, &in = n.operands[0]->type.shape;
  auto low = n.intsAttr("low"), interior = n.intsAttr("interior");
  Shape inStrides = stridesOf(in);
  Type *t = elemType(n);
  Body k = beginKernel(n, {slot(n), slot(n.operands[0])});
  // Whether axis d's output index o maps to an input element, and its offset.
  auto axis = [&](size_t d, Value *o, Value *&ok, Value *&off) {
    Value *rel = b.CreateSub(o, c64(low[d]));
    Value *q = b.CreateSDiv(rel, c64(interior[d] + 1));
    Value *r = b.CreateSRem(rel, c64(interior[d] + 1));
    ok = b.CreateAnd(
        b.CreateAnd(b.CreateICmpSGE(rel, c64(0)), b.CreateICmpEQ(r, c64(0))),
        b.CreateICmpSLT(q, c64(in[d])));
    off = b.CreateMul(q, c64(inStrides[d]));
  };
  int64_t len = out.back(), rows = elems(n) / len;
  loop(k.begin, k.end, [&](Value *row) {
    auto idx = unravel(row, ArrayRef<int64_t>(out).drop_back());
    Value *rowOk = b.getTrue(), *src = c64(0);
    for (size_t d = 0; d + 1 < out.size(); ++d) {
      Value *ok, *off;
      axis(d, idx[d], ok, off);
      rowOk = b.CreateAnd(rowOk, ok);
      src = b.CreateAdd(src, off);
    }
    loop(len, [&](Value *j) {
      Value *ok, *off;
      axis(out.size() - 1, j, ok, off);
      ok = b.CreateAnd(ok, rowOk);
      // Load from a clamped index so the load is always safe.
      Value *at = b.CreateSelect(ok, b.CreateAdd(src, off), c64(0));
      Value *v = load(t, k.buf[1], at);
      store(b.CreateSelect(ok, v, Constant::getNullValue(t)), k.buf[0],
            add(mul(row, len), j));
    });
  });
  endKernel(k, rows, std::max<int64_t>(1, kElementGrain / len));
}

void Lowering::emitConcat(const Node &n) {
  int64_t axis = cantFail(normaliseAxis(n, n.intAttr("axis"), n.type.rank()));
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= n.type.shape[d];
  SmallVector<int64_t, 4> slots{slot(n)};
  for (const Node *o : n.operands)
    slots.push_back(slot(o));
  int64_t rowLen = elems(n) / outer;
  Type *t = elemType(n);
  Body k = beginKernel(n, slots);
  loop(k.begin, k.end, [&](Value *r) {
    int64_t at = 0;
    for (size_t o = 0; o < n.operands.size(); ++o) {
      int64_t chunk = elems(*n.operands[o]) / outer;
      Value *src = mul(r, chunk), *dst = add(mul(r, rowLen), c64(at));
      loop(chunk, [&](Value *j) {
        store(load(t, k.buf[o + 1], add(src, j)), k.buf[0], add(dst, j));
      });
      at += chunk;
    }
  });
  endKernel(k, outer, std::max<int64_t>(1, kElementGrain / rowLen));
}

//===-- Reductions -------------------------------------------------------===//

void Lowering::emitReduce(const Node &n) {
  const Shape &in = n.operands[0]->type.shape;
  Shape axes = cantFail(reducedAxes(n));
  bool isMax = n.op == Op::Max;
  int64_t outN = elems(n), count = elems(*n.operands[0]) / outN;
  Value *init = isMax ? cf(-INFINITY) : cf(0);
  auto finish = [&](Value *acc) {
    return n.op == Op::Mean ? b.CreateFDiv(acc, cf(float(count))) : acc;
  };
  Body k = beginKernel(n, {slot(n), slot(n.operands[0])});
  // Reducing leading axes (a bias gradient): accumulate whole rows, so the
  // inner loop runs over contiguous outputs.
  bool leading = true;
  for (size_t i = 0; i < axes.size(); ++i)
    leading &= axes[i] == int64_t(i);
  if (leading && !isMax && outN > 1) {
    loop(k.begin, k.end, [&](Value *o) { store(init, k.buf[0], o); });
    loop(count, [&](Value *r) {
      loop(k.begin, k.end, [&](Value *o) {
        Value *v = loadF(k.buf[1], add(mul(r, outN), o));
        store(b.CreateFAdd(loadF(k.buf[0], o), v), k.buf[0], o);
      });
    });
    if (n.op == Op::Mean)
      loop(k.begin, k.end,
           [&](Value *o) { store(finish(loadF(k.buf[0], o)), k.buf[0], o); });
    endKernel(k, outN, 64);
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
  loop(k.begin, k.end, [&](Value *o) {
    auto idx = unravel(o, kept);
    Value *base = c64(0);
    for (size_t d = 0; d < kept.size(); ++d)
      base = add(base, mul(idx[d], keptStrides[d]));
    AllocaInst *acc = var(f32, init);
    std::function<void(size_t, Value *)> nest = [&](size_t level, Value *at) {
      if (level == axes.size()) {
        Value *v = loadF(k.buf[1], at);
        set(acc, isMax ? nanMax(get(acc), v) : reassocAdd(get(acc), v));
        return;
      }
      loop(in[axes[level]], [&](Value *i) {
        nest(level + 1, add(at, mul(i, inStrides[axes[level]])));
      });
    };
    nest(0, base);
    store(finish(get(acc)), k.buf[0], o);
  });
  endKernel(k, outN, std::max<int64_t>(1, kElementGrain / count));
}

//===-- Matrix products and convolution ----------------------------------===//

void Lowering::emitMatMul(const Node &n) {
  const Node *a = n.operands[0], *w = n.operands[1];
  bool ta = plan.slotOf[nodeIndex(*a)] < 0, tb = plan.slotOf[nodeIndex(*w)] < 0;
  if (ta)
    a = a->operands[0];
  if (tb)
    w = w->operands[0];
  const Shape &out = n.type.shape;
  int64_t M = out[out.size() - 2], N = out.back();
  int64_t K = n.operands[0]->type.shape.back();
  int64_t batch = elems(n) / (M * N);
  bool sharedB = w->type.rank() == 2;
  // A shared right matrix and an untransposed left one: one tall GEMM.
  if (sharedB && !ta) {
    M *= batch;
    batch = 1;
  }
  callMatMul({entrySlot(slot(a)), entrySlot(slot(w)), entrySlot(slot(n)),
              eb.getInt64(batch), eb.getInt64(M), eb.getInt64(N),
              eb.getInt64(K), eb.getInt32(ta | tb << 1), eb.getInt64(M * K),
              eb.getInt64(sharedB ? 0 : K * N), eb.getInt64(M * N)});
}

void Lowering::callMatMul(ArrayRef<Value *> args) {
  SmallVector<Value *, 16> all{entry->getArg(1)};
  all.append(args.begin(), args.end());
  all.append({emitGemmKernels(m, opts.gemm), eb.getInt64(opts.gemm.mr),
              eb.getInt64(opts.gemm.nr())});
  eb.CreateCall(matmul, all);
}

/// cols[n, (c, kh, kw), (oh, ow)] = x[n, c, oh*s - p + kh, ow*s - p + kw], or
/// padValue outside the image.
void Lowering::emitIm2col(const Node &n, int64_t outSlot, int64_t size,
                          int64_t stride, int64_t pad, double padValue) {
  const Shape &x = n.operands[0]->type.shape;
  int64_t C = x[1], H = x[2], W = x[3];
  int64_t OH = (H + 2 * pad - size) / stride + 1;
  int64_t OW = (W + 2 * pad - size) / stride + 1;
  int64_t rows = x[0] * C * size * size;
  Body k = beginKernel(n, {outSlot, slot(n.operands[0])}, ".im2col");
  loop(k.begin, k.end, [&](Value *row) {
    auto idx = unravel(row, {x[0] * C, size, size}); // (n*C + c, kh, kw)
    Value *plane = mul(idx[0], H * W);
    Value *dst = mul(row, OH * OW);
    loop(OH, [&](Value *oh) {
      Value *ih = b.CreateAdd(b.CreateSub(mul(oh, stride), c64(pad)), idx[1]);
      Value *rowIn =
          b.CreateAnd(b.CreateICmpSGE(ih, c64(0)), b.CreateICmpSLT(ih, c64(H)));
      loop(OW, [&](Value *ow) {
        Value *iw = b.CreateAdd(b.CreateSub(mul(ow, stride), c64(pad)), idx[2]);
        Value *in =
            b.CreateAnd(rowIn, b.CreateAnd(b.CreateICmpSGE(iw, c64(0)),
                                           b.CreateICmpSLT(iw, c64(W))));
        Value *at = b.CreateSelect(
            in, b.CreateAdd(plane, b.CreateAdd(b.CreateMul(ih, c64(W)), iw)),
            c64(0));
        Value *v = b.CreateSelect(in, loadF(k.buf[1], at), cf(padValue));
        store(v, k.buf[0], add(dst, add(mul(oh, OW), ow)));
      });
    });
  });
  endKernel(k, rows, std::max<int64_t>(1, kElementGrain / (OH * OW)));
}

void Lowering::emitConv2d(const Node &n) {
  const Shape &w = n.operands[1]->type.shape, &y = n.type.shape;
  int64_t scratch = plan.scratchOf[nodeIndex(n)];
  emitIm2col(n, scratch, w[2], n.intAttr("stride"), n.intAttr("pad"), 0);
  // y[n] (O x P) = w (O x CKK) . cols[n] (CKK x P), per image.
  int64_t O = w[0], CKK = w[1] * w[2] * w[3], P = y[2] * y[3];
  callMatMul({entrySlot(slot(n.operands[1])), entrySlot(scratch),
              entrySlot(slot(n)), eb.getInt64(y[0]), eb.getInt64(O),
              eb.getInt64(P), eb.getInt64(CKK), eb.getInt32(0), eb.getInt64(0),
              eb.getInt64(CKK * P), eb.getInt64(O * P)});
}

/// col2im: each image plane sums the column entries that read it, in the
/// interpreter's order.
void Lowering::emitFold(const Node &n) {
  const Shape &y = n.type.shape;
  int64_t C = y[1], H = y[2], W = y[3], size = n.intAttr("size");
  int64_t s = n.intAttr("stride"), p = n.intAttr("pad");
  int64_t OH = (H + 2 * p - size) / s + 1, OW = (W + 2 * p - size) / s + 1;
  Body k = beginKernel(n, {slot(n), slot(n.operands[0])});
  loop(k.begin, k.end, [&](Value *plane) { // n*C + c
    Value *img = mul(plane, H * W);
    loop(H * W, [&](Value *i) { store(cf(0), k.buf[0], add(img, i)); });
    Value *colRow0 = mul(plane, size * size); // (n*C + c)*K*K
    loop(size, [&](Value *kh) {
      loop(size, [&](Value *kw) {
        Value *src = mul(add(add(colRow0, mul(kh, size)), kw), OH * OW);
        loop(OH, [&](Value *oh) {
          loop(OW, [&](Value *ow) {
            auto [ih, iw, in] = window(oh, ow, kh, kw, s, p, H, W);
            BasicBlock *then = BasicBlock::Create(ctx, "inside", k.fn);
            BasicBlock *cont = BasicBlock::Create(ctx, "next", k.fn);
            b.CreateCondBr(in, then, cont);
            b.SetInsertPoint(then);
            Value *at = add(img, add(mul(ih, W), iw));
            Value *v = loadF(k.buf[1], add(src, add(mul(oh, OW), ow)));
            store(b.CreateFAdd(loadF(k.buf[0], at), v), k.buf[0], at);
            b.CreateBr(cont);
            b.SetInsertPoint(cont);
          });
        });
      });
    });
  });
  endKernel(k, y[0] * C, 1);
}

void Lowering::emitPool(const Node &n) {
  const Shape &x = n.operands[0]->type.shape, &y = n.type.shape;
  int64_t H = x[2], W = x[3], OH = y[2], OW = y[3];
  int64_t size = n.intAttr("size"), s = n.intAttr("stride"),
          p = n.intAttr("pad");
  bool isMax = n.op == Op::MaxPool2d;
  Body k = beginKernel(n, {slot(n), slot(n.operands[0])});
  loop(k.begin, k.end, [&](Value *plane) {
    loop(OH, [&](Value *oh) {
      loop(OW, [&](Value *ow) {
        AllocaInst *acc = var(f32, isMax ? cf(-INFINITY) : cf(0));
        loop(size, [&](Value *kh) {
          loop(size, [&](Value *kw) {
            auto [ih, iw, in] = window(oh, ow, kh, kw, s, p, H, W);
            Value *at = b.CreateSelect(
                in, add(mul(plane, H * W), add(mul(ih, W), iw)), c64(0));
            Value *v = loadF(k.buf[1], at);
            Value *next =
                isMax ? nanMax(get(acc), v) : b.CreateFAdd(get(acc), v);
            set(acc, b.CreateSelect(in, next, get(acc)));
          });
        });
        Value *r =
            isMax ? get(acc) : b.CreateFDiv(get(acc), cf(float(size * size)));
        store(r, k.buf[0], add(mul(plane, OH * OW), add(mul(oh, OW), ow)));
      });
    });
  });
  endKernel(k, y[0] * y[1], 1);
}

//===-- Network layers ---------------------------------------------------===//

void Lowering::emitSoftmax(const Node &n) {
  const Shape &shape = n.type.shape;
  int64_t axis = cantFail(normaliseAxis(n, n.intAttr("axis"), n.type.rank()));
  int64_t outer = 1, len = shape[axis], inner = 1;
  for (int64_t d = 0; d < int64_t(shape.size()); ++d)
    if (d != axis)
      (d < axis ? outer : inner) *= shape[d];
  bool isLog = n.op == Op::LogSoftmax;
  Body k = beginKernel(n, {slot(n), slot(n.operands[0])});
  loop(k.begin, k.end, [&](Value *line) { // o * inner + in
    Value *base = add(mul(b.CreateUDiv(line, c64(inner)), len * inner),
                      b.CreateURem(line, c64(inner)));
    auto at = [&](Value *i) { return add(base, mul(i, inner)); };
    AllocaInst *mx = var(f32, cf(-INFINITY));
    loop(len, [&](Value *i) {
      Value *v = loadF(k.buf[1], at(i));
      set(mx, b.CreateSelect(b.CreateFCmpOLT(get(mx), v), v, get(mx)));
    });
    Value *m = get(mx);
    AllocaInst *sum = var(f32, cf(0));
    loop(len, [&](Value *i) {
      Value *e = unary(Intrinsic::exp, b.CreateFSub(loadF(k.buf[1], at(i)), m));
      set(sum, reassocAdd(get(sum), e));
    });
    Value *total = get(sum);
    Value *logSum = isLog ? unary(Intrinsic::log, total) : nullptr;
    loop(len, [&](Value *i) {
      Value *z = b.CreateFSub(loadF(k.buf[1], at(i)), m);
      Value *y = isLog ? b.CreateFSub(z, logSum)
                       : b.CreateFDiv(unary(Intrinsic::exp, z), total);
      store(y, k.buf[0], at(i));
    });
  });
  endKernel(k, outer * inner, std::max<int64_t>(1, kElementGrain / len));
}

void Lowering::emitBatchNorm(const Node &n) {
  const Shape &shape = n.type.shape;
  int64_t C = shape[1], outer = shape[0], inner = elems(n) / (outer * C);
  bool train = n.stringAttr("mode") == "train";
  float count = float(outer * inner);
  SmallVector<int64_t, 6> slots{slot(n)};
  for (const Node *o : n.operands)
    slots.push_back(slot(o));
  Body k = beginKernel(n, slots);
  Value *x = k.buf[1];
  loop(k.begin, k.end, [&](Value *c) {
    auto each = [&](function_ref<void(Value *)> fn) {
      loop(outer, [&](Value *o) {
        Value *row = mul(add(mul(o, C), c), inner);
        loop(inner, [&](Value *i) { fn(add(row, i)); });
      });
    };
    Value *mean = loadF(k.buf[4], c), *var = loadF(k.buf[5], c);
    if (train) {
      AllocaInst *sum = this->var(f32, cf(0));
      each([&](Value *at) { set(sum, reassocAdd(get(sum), loadF(x, at))); });
      mean = b.CreateFDiv(get(sum), cf(count));
      AllocaInst *sq = this->var(f32, cf(0));
      each([&](Value *at) {
        Value *d = b.CreateFSub(loadF(x, at), mean);
        set(sq, reassocAdd(get(sq), b.CreateFMul(d, d)));
      });
      var = b.CreateFDiv(get(sq), cf(count));
    }
    Value *scale = b.CreateFDiv(
        loadF(k.buf[2], c),
        unary(Intrinsic::sqrt, b.CreateFAdd(var, cf(n.floatAttr("eps")))));
    Value *beta = loadF(k.buf[3], c);
    each([&](Value *at) {
      Value *y = b.CreateFAdd(
          b.CreateFMul(b.CreateFSub(loadF(x, at), mean), scale), beta);
      store(y, k.buf[0], at);
    });
  });
  endKernel(k, C, 1);
}

void Lowering::emitLayerNorm(const Node &n) {
  int64_t d = n.type.shape.back(), rows = elems(n) / d;
  Body k = beginKernel(n, {slot(n), slot(n.operands[0]), slot(n.operands[1]),
                           slot(n.operands[2])});
  loop(k.begin, k.end, [&](Value *r) {
    Value *row = mul(r, d);
    AllocaInst *sum = var(f32, cf(0));
    loop(d, [&](Value *i) {
      set(sum, reassocAdd(get(sum), loadF(k.buf[1], add(row, i))));
    });
    Value *mean = b.CreateFDiv(get(sum), cf(float(d)));
    AllocaInst *sq = var(f32, cf(0));
    loop(d, [&](Value *i) {
      Value *dv = b.CreateFSub(loadF(k.buf[1], add(row, i)), mean);
      set(sq, reassocAdd(get(sq), b.CreateFMul(dv, dv)));
    });
    Value *variance = b.CreateFDiv(get(sq), cf(float(d)));
    Value *inv = b.CreateFDiv(
        cf(1),
        unary(Intrinsic::sqrt, b.CreateFAdd(variance, cf(n.floatAttr("eps")))));
    loop(d, [&](Value *i) {
      Value *xhat =
          b.CreateFMul(b.CreateFSub(loadF(k.buf[1], add(row, i)), mean), inv);
      Value *y = b.CreateFAdd(b.CreateFMul(xhat, loadF(k.buf[2], i)),
                              loadF(k.buf[3], i));
      store(y, k.buf[0], add(row, i));
    });
  });
  endKernel(k, rows, std::max<int64_t>(1, kElementGrain / d));
}

/// Branches to a block that reports `value` as out of range for node n and
/// returns, unless `ok`; continues after it.
static void checkOrFail(IRBuilder<> &b, Function *fn, Value *ok,
                        FunctionCallee fail, Value *rt, int64_t node,
                        Value *value) {
  LLVMContext &ctx = b.getContext();
  BasicBlock *bad = BasicBlock::Create(ctx, "out_of_range", fn);
  BasicBlock *good = BasicBlock::Create(ctx, "in_range", fn);
  b.CreateCondBr(ok, good, bad, MDBuilder(ctx).createLikelyBranchWeights());
  b.SetInsertPoint(bad);
  b.CreateCall(fail,
               {rt, b.getInt64(node), b.CreateSExt(value, b.getInt64Ty())});
  b.CreateRetVoid();
  b.SetInsertPoint(good);
}

void Lowering::emitEmbedding(const Node &n) {
  int64_t V = n.operands[1]->type.shape[0], D = n.operands[1]->type.shape[1];
  int64_t ids = elems(*n.operands[0]);
  Body k = beginKernel(n, {slot(n), slot(n.operands[0]), slot(n.operands[1])});
  loop(k.begin, k.end, [&](Value *i) {
    Value *id = load(i32, k.buf[1], i);
    Value *ok = b.CreateAnd(b.CreateICmpSGE(id, b.getInt32(0)),
                            b.CreateICmpSLT(id, b.getInt32(V)));
    checkOrFail(b, k.fn, ok, fail, k.rt, nodeIndex(n), id);
    Value *src = mul(b.CreateSExt(id, i64), D), *dst = mul(i, D);
    loop(D, [&](Value *j) {
      store(loadF(k.buf[2], add(src, j)), k.buf[0], add(dst, j));
    });
  });
  endKernel(k, ids, std::max<int64_t>(1, kElementGrain / D));
}

void Lowering::emitOneHot(const Node &n) {
  int64_t C = n.intAttr("classes"), ids = elems(*n.operands[0]);
  Body k = beginKernel(n, {slot(n), slot(n.operands[0])});
  loop(k.begin, k.end, [&](Value *i) {
    Value *id = load(i32, k.buf[1], i);
    Value *ok = b.CreateAnd(b.CreateICmpSGE(id, b.getInt32(0)),
                            b.CreateICmpSLT(id, b.getInt32(C)));
    checkOrFail(b, k.fn, ok, fail, k.rt, nodeIndex(n), id);
    Value *row = mul(i, C);
    loop(C, [&](Value *j) { store(cf(0), k.buf[0], add(row, j)); });
    store(cf(1), k.buf[0], add(row, b.CreateSExt(id, i64)));
  });
  endKernel(k, ids, std::max<int64_t>(1, kElementGrain / C));
}

//===-- Losses: one scalar, summed in order on one thread
//------------------===//

void Lowering::emitCrossEntropy(const Node &n) {
  int64_t rows = n.operands[0]->type.shape[0], C = n.operands[0]->type.shape[1];
  float eps = float(n.floatAttr("label_smoothing"));
  Body k = beginKernel(n, {slot(n), slot(n.operands[0]), slot(n.operands[1])});
  AllocaInst *total = var(f32, cf(0));
  loop(rows, [&](Value *r) {
    Value *label = load(i32, k.buf[2], r);
    Value *ok = b.CreateAnd(b.CreateICmpSGE(label, b.getInt32(0)),
                            b.CreateICmpSLT(label, b.getInt32(C)));
    checkOrFail(b, k.fn, ok, fail, k.rt, nodeIndex(n), label);
    Value *row = mul(r, C);
    AllocaInst *mx = var(f32, loadF(k.buf[1], row));
    loop(C, [&](Value *i) {
      Value *v = loadF(k.buf[1], add(row, i));
      set(mx, b.CreateSelect(b.CreateFCmpOLT(get(mx), v), v, get(mx)));
    });
    Value *m = get(mx);
    AllocaInst *sum = var(f32, cf(0)), *all = var(f32, cf(0));
    loop(C, [&](Value *i) {
      Value *v = loadF(k.buf[1], add(row, i));
      set(sum, reassocAdd(get(sum), unary(Intrinsic::exp, b.CreateFSub(v, m))));
      set(all, reassocAdd(get(all), v));
    });
    Value *lse = b.CreateFAdd(m, unary(Intrinsic::log, get(sum)));
    Value *picked = loadF(k.buf[1], add(row, b.CreateSExt(label, i64)));
    Value *loss = b.CreateFAdd(
        b.CreateFMul(cf(1 - eps), b.CreateFSub(lse, picked)),
        b.CreateFMul(cf(eps),
                     b.CreateFSub(lse, b.CreateFDiv(get(all), cf(float(C))))));
    set(total, b.CreateFAdd(get(total), loss));
  });
  store(b.CreateFDiv(get(total), cf(float(rows))), k.buf[0], c64(0));
  endKernel(k, 1, 1);
}

void Lowering::emitPairLoss(const Node &n) {
  int64_t count = elems(*n.operands[0]);
  Body k = beginKernel(n, {slot(n), slot(n.operands[0]), slot(n.operands[1])});
  AllocaInst *total = var(f32, cf(0));
  loop(count, [&](Value *i) {
    Value *x = loadF(k.buf[1], i), *t = loadF(k.buf[2], i), *term;
    if (n.op == Op::MSE) {
      Value *d = b.CreateFSub(x, t);
      term = b.CreateFMul(d, d);
    } else { // max(z, 0) - z t + log1p(exp(-|z|))
      Value *relu = b.CreateSelect(b.CreateFCmpOGT(x, cf(0)), x, cf(0));
      Value *soft =
          libm("log1pf",
               unary(Intrinsic::exp, b.CreateFNeg(unary(Intrinsic::fabs, x))));
      term = b.CreateFAdd(b.CreateFSub(relu, b.CreateFMul(x, t)), soft);
    }
    set(total, reassocAdd(get(total), term));
  });
  store(b.CreateFDiv(get(total), cf(float(count))), k.buf[0], c64(0));
  endKernel(k, 1, 1);
}

//===-- Driver -----------------------------------------------------------===//

Error Lowering::run() {
  parallelFor = m.getOrInsertFunction(kRtParallelFor, b.getVoidTy(), ptr, ptr,
                                      ptr, i64, i64);
  matmul =
      m.getOrInsertFunction(kRtMatMul, b.getVoidTy(), ptr, ptr, ptr, ptr, i64,
                            i64, i64, i64, i32, i64, i64, i64, ptr, i64, i64);
  fail = m.getOrInsertFunction(kRtFail, b.getVoidTy(), ptr, i64, i64);
  dropoutKey = m.getOrInsertFunction(kRtDropoutKey, i64, ptr, i64);

  entry = Function::Create(FunctionType::get(b.getVoidTy(), {ptr, ptr}, false),
                           Function::ExternalLinkage, kEntryName, m);
  entry->getArg(0)->setName("bufs");
  entry->getArg(1)->setName("rt");
  eb.SetInsertPoint(BasicBlock::Create(ctx, "entry", entry));

  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = *g.nodes[i];
    if (n.type.dtype != DType::F32 && n.type.dtype != DType::I32)
      return makeError("the JIT computes f32 and i32 values; node %" +
                       Twine(i) + " is " + n.type.str());
    if (plan.slotOf[i] < 0 || (n.info().flags & Leaf && n.op != Op::Constant) ||
        n.op == Op::Reshape || n.op == Op::StopGradient)
      continue; // read in place, a caller's buffer, or a view
    switch (n.op) {
    case Op::Broadcast:
    case Op::Transpose:
    case Op::Slice:
      emitGather(n);
      break;
    case Op::Pad:
      emitPad(n);
      break;
    case Op::Concat:
      emitConcat(n);
      break;
    case Op::Sum:
    case Op::Mean:
    case Op::Max:
      emitReduce(n);
      break;
    case Op::MatMul:
      emitMatMul(n);
      break;
    case Op::Conv2d:
      emitConv2d(n);
      break;
    case Op::Unfold2d:
      emitIm2col(n, slot(n), n.intAttr("size"), n.intAttr("stride"),
                 n.intAttr("pad"), n.floatAttr("value"));
      break;
    case Op::Fold2d:
      emitFold(n);
      break;
    case Op::MaxPool2d:
    case Op::AvgPool2d:
      emitPool(n);
      break;
    case Op::Softmax:
    case Op::LogSoftmax:
      emitSoftmax(n);
      break;
    case Op::BatchNorm:
      emitBatchNorm(n);
      break;
    case Op::LayerNorm:
      emitLayerNorm(n);
      break;
    case Op::Embedding:
      emitEmbedding(n);
      break;
    case Op::OneHot:
      emitOneHot(n);
      break;
    case Op::CrossEntropy:
      emitCrossEntropy(n);
      break;
    case Op::MSE:
    case Op::BCEWithLogits:
      emitPairLoss(n);
      break;
    default:
      if (!(n.info().flags & Elementwise) && n.op != Op::Constant &&
          n.op != Op::Dropout)
        return makeError("no LLVM lowering for op '" + n.info().mnemonic + "'");
      emitElementwise(n);
    }
  }
  // Each updated leaf receives its new value in the caller's buffer.
  for (const BufferPlan::Copy &c : plan.endCopies)
    eb.CreateMemCpy(entrySlot(c.to), Align(4), entrySlot(c.from), Align(4),
                    c.bytes);
  eb.CreateRetVoid();

  std::string attr = opts.vectorWidth ? std::to_string(opts.vectorWidth) : "";
  for (Function &f : m)
    if (!f.isDeclaration() && !attr.empty())
      f.addFnAttr("prefer-vector-width", attr);
  std::string err;
  raw_string_ostream os(err);
  if (verifyModule(m, &os))
    return makeError("internal error: invalid LLVM IR for @" + g.name + ": " +
                     os.str());
  return Error::success();
}

} // namespace

Expected<std::unique_ptr<Module>>
kiln::lowerToLLVM(const Graph &g, const BufferPlan &plan, LLVMContext &ctx,
                  const LoweringOptions &opts) {
  auto m = std::make_unique<Module>("kiln." + g.name, ctx);
  Lowering lower(g, plan, *m, opts);
  if (auto e = lower.run())
    return std::move(e);
  return std::move(m);
}
