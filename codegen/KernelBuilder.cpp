//===- KernelBuilder.cpp - Kernels, launches and the entry point ----------===//
//
// See KernelBuilder.h for the ABI. A kernel's signature is the text of
// everything its body may depend on: the op, its attributes, the result and
// operand types, the operands' alias classes and folded constants. Two
// nodes with one signature get one kernel.
//
//===----------------------------------------------------------------------===//
#include "codegen/KernelBuilder.h"
#include "codegen/Runtime.h"
#include "ir/Printer.h"
#include "llvm/IR/MDBuilder.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

using namespace kiln;
using namespace llvm;

struct KernelBuilder::Part {
  std::unique_ptr<LLVMContext> ctx;
  std::unique_ptr<Module> m;
  IRBuilder<> b;
  explicit Part(const Twine &name)
      : ctx(std::make_unique<LLVMContext>()),
        m(std::make_unique<Module>(name.str(), *ctx)), b(*ctx) {}
};

KernelBuilder::KernelBuilder(const Graph &g, const BufferPlan &plan,
                             const LoweringOptions &opts, unsigned numParts)
    : g(g), plan_(plan), opts(opts) {
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = *g.nodes[i];
    index[&n] = i;
    if (n.op == Op::Result) {
      auto &slots = results[n.operands[0]];
      slots.resize(1 + n.operands[0]->body->moreOutputs.size(), -1);
      slots[n.intAttr("index")] = plan.slotOf[i];
    }
  }
  for (unsigned p = 0; p < std::max(1u, numParts); ++p)
    parts.push_back(std::make_unique<Part>("kiln." + g.name +
                                           (p ? "." + Twine(p) : Twine())));
  Part &p0 = *parts[0];
  eb = std::make_unique<IRBuilder<>>(*p0.ctx);
  Type *ptr = eb->getPtrTy();
  step = entry =
      Function::Create(FunctionType::get(eb->getVoidTy(), {ptr, ptr}, false),
                       Function::ExternalLinkage, kEntryName, *p0.m);
  startEntryPiece();
  body = &p0.b;
}

void KernelBuilder::startEntryPiece() {
  // The entry point only loads pointers and calls the kernels, the GEMM and
  // memcpy: optimising it gains nothing and LLVM's middle end is
  // superlinear on such long straight-line functions.
  entry->addFnAttr(Attribute::OptimizeNone);
  entry->addFnAttr(Attribute::NoInline);
  entry->getArg(0)->setName("bufs");
  entry->getArg(1)->setName("rt");
  eb->SetInsertPoint(BasicBlock::Create(eb->getContext(), "entry", entry));
  args = nullptr;
  argsSize = 0;
  perProduct.args = nullptr;
  perProduct.argsSize = 0;
  entryNodes = 0;
}

void KernelBuilder::beginNode() {
  assert(!perProduct.task && "a deferred task outlived its node's GEMM");
  if (++entryNodes <= kNodesPerEntry)
    return;
  if (entry != step)
    eb->CreateRetVoid();
  Function *next = Function::Create(
      step->getFunctionType(), Function::InternalLinkage,
      kEntryName + Twine(".") + Twine(entryPieces++), *parts[0]->m);
  IRBuilder<>(&step->back())
      .CreateCall(next, {step->getArg(0), step->getArg(1)});
  entry = next;
  startEntryPiece();
  entryNodes = 1;
}

KernelBuilder::~KernelBuilder() = default;

std::string KernelBuilder::signature(const Node &n, unsigned numBuffers,
                                     StringRef suffix, bool unique) const {
  std::string s;
  raw_string_ostream os(s);
  os << n.info().mnemonic << suffix << " " << numBuffers << " " << n.type.str();
  for (const Attr &a : n.attrs) {
    os << " " << a.name << "=";
    printAttrValue(a.value, os);
  }
  for (const Node *o : n.operands) {
    os << " (" << o->type.str() << " " << int(storage(o));
    if (storage(o) == Storage::Immediate)
      os << " " << format("%a", o->floatAttr("value"));
    os << ")";
  }
  if (n.body)
    printGraph(*n.body, os);
  if (unique)
    os << " #" << nodeIndex(n);
  return s;
}

SmallVector<int64_t, 4> KernelBuilder::resultSlots(const Node &f) const {
  SmallVector<int64_t, 4> r = results.lookup(&f);
  r.resize(1 + f.body->moreOutputs.size(), -1);
  r[0] = slot(f);
  return r;
}

bool KernelBuilder::beginKernel(const Node &n, unsigned numBuffers,
                                StringRef suffix, bool unique, KernelForm form,
                                StringRef variant) {
  assert(!open && "a kernel is already open");
  std::string sig = signature(n, numBuffers, suffix, unique) + variant.str();
  currentForm = form;
  if (auto it = tasks.find(sig); it != tasks.end()) {
    currentTask = it->second;
    return false;
  }
  currentTask =
      ("k" + Twine(nodeIndex(n)) + "." + n.info().mnemonic + suffix).str();
  tasks[sig] = currentTask;
  currentPart = nextPart++ % parts.size();
  body = &part().b;
  LLVMContext &ctx = *part().ctx;
  Type *ptr = b().getPtrTy();
  SmallVector<Type *, 8> params(numBuffers, ptr);
  params.append({ptr, i64(), i64()});
  if (form == KernelForm::Block)
    params.append({i64(), i64(), ptr, i64()});
  auto *fty = FunctionType::get(b().getVoidTy(), params, false);
  current = Kernel();
  current.fn = Function::Create(fty, Function::InternalLinkage,
                                currentTask + ".body", *part().m);
  current.fn->addFnAttr(Attribute::AlwaysInline);
  current.fn->addFnAttr(Attribute::NoUnwind);
  for (unsigned i = 0; i < numBuffers; ++i) {
    current.fn->addParamAttr(i, Attribute::NoAlias);
    current.fn->getArg(i)->setName(i == 0 ? "out" : "in" + Twine(i - 1));
    current.buf.push_back(current.fn->getArg(i));
  }
  current.rt = current.fn->getArg(numBuffers);
  current.begin = current.fn->getArg(numBuffers + 1);
  current.end = current.fn->getArg(numBuffers + 2);
  current.rt->setName("rt");
  current.begin->setName("begin");
  current.end->setName("end");
  if (form == KernelForm::Block) {
    current.colBegin = current.fn->getArg(numBuffers + 3);
    current.colEnd = current.fn->getArg(numBuffers + 4);
    current.colBegin->setName("col.begin");
    current.colEnd->setName("col.end");
    current.product = current.fn->getArg(numBuffers + 5);
    current.productLd = current.fn->getArg(numBuffers + 6);
    current.product->setName("product");
    current.productLd->setName("product.ld");
    current.fn->addParamAttr(numBuffers + 5, Attribute::ReadOnly);
  }
  b().SetInsertPoint(BasicBlock::Create(ctx, "entry", current.fn));
  open = true;
  return true;
}

/// A task's parameters after its buffers and the runtime context: its
/// range, or a Block's rows, columns and product block (pointer, stride).
static SmallVector<Type *, 8> taskParams(LLVMContext &ctx, KernelForm form) {
  Type *ptr = PointerType::getUnqual(ctx), *i64 = Type::getInt64Ty(ctx);
  SmallVector<Type *, 8> params{ptr, ptr, i64, i64};
  if (form == KernelForm::Block)
    params.append({i64, i64, ptr, i64});
  return params;
}

Function *KernelBuilder::closeKernel() {
  auto *taskTy = FunctionType::get(
      eb->getVoidTy(), taskParams(eb->getContext(), currentForm), false);
  if (open) {
    // The task: loads the buffers from args and calls the body.
    b().CreateRetVoid();
    LLVMContext &ctx = *part().ctx;
    Type *kptr = b().getPtrTy();
    auto *fty =
        FunctionType::get(b().getVoidTy(), taskParams(ctx, currentForm), false);
    auto *task = Function::Create(fty, Function::ExternalLinkage, currentTask,
                                  *part().m);
    task->addFnAttr(Attribute::NoUnwind);
    task->addFnAttr(Attribute::NoInline);
    IRBuilder<> tb(BasicBlock::Create(ctx, "entry", task));
    SmallVector<Value *, 8> callArgs;
    for (size_t i = 0; i < current.buf.size(); ++i)
      callArgs.push_back(tb.CreateLoad(
          kptr, tb.CreateConstInBoundsGEP1_64(kptr, task->getArg(0), i)));
    for (unsigned a = 1; a < fty->getNumParams(); ++a)
      callArgs.push_back(task->getArg(a));
    tb.CreateCall(current.fn, callArgs);
    tb.CreateRetVoid();
    open = false;
  }
  Module &m0 = *parts[0]->m;
  Function *task = m0.getFunction(currentTask);
  if (!task)
    task = Function::Create(taskTy, Function::ExternalLinkage, currentTask, m0);
  return task;
}

void KernelBuilder::storeSlots(AllocaInst *&array, unsigned &size,
                               ArrayRef<int64_t> slots, StringRef name) {
  // An array reused by every launch, replaced by a longer one when a
  // launch needs more entries than it has.
  Type *ptr = eb->getPtrTy();
  if (slots.size() > size) {
    IRBuilder<> at(&entry->getEntryBlock(), entry->getEntryBlock().begin());
    size = slots.size();
    array = at.CreateAlloca(ArrayType::get(ptr, size), nullptr, name);
  }
  for (size_t i = 0; i < slots.size(); ++i)
    eb->CreateStore(
        entrySlot(slots[i]),
        eb->CreateConstInBoundsGEP2_64(array->getAllocatedType(), array, 0, i));
}

void KernelBuilder::fillArgs(ArrayRef<int64_t> slots) {
  storeSlots(args, argsSize, slots, "args");
}

void KernelBuilder::launch(ArrayRef<int64_t> slots, int64_t count,
                           int64_t grain) {
  assert(currentForm == KernelForm::Range);
  Function *task = closeKernel();
  if (count <= 0)
    return;
  fillArgs(slots);
  Type *ptr = eb->getPtrTy(), *i64e = eb->getInt64Ty();
  Value *rt = entry->getArg(1);
  if (count < 2 * grain) {
    eb->CreateCall(task, {args, rt, eb->getInt64(0), eb->getInt64(count)});
  } else {
    FunctionCallee parallelFor = parts[0]->m->getOrInsertFunction(
        kRtParallelFor, eb->getVoidTy(), ptr, ptr, ptr, i64e, i64e);
    eb->CreateCall(parallelFor,
                   {rt, task, args, eb->getInt64(count), eb->getInt64(grain)});
  }
}

void KernelBuilder::launchPerProduct(ArrayRef<int64_t> slots, int64_t count,
                                     int64_t grain) {
  assert(currentForm == KernelForm::Range && !perProduct.task);
  perProduct.task = closeKernel();
  perProduct.count = count;
  perProduct.grain = grain;
  storeSlots(perProduct.args, perProduct.argsSize, slots, "product.args");
}

void KernelBuilder::launchGemm(ArrayRef<int64_t> slots,
                               ArrayRef<Value *> mmArgs) {
  assert(currentForm == KernelForm::Block);
  Function *task = closeKernel();
  fillArgs(slots);
  callMatMul(mmArgs, task);
}

void KernelBuilder::elementwise(
    const Node &n, function_ref<Value *(ArrayRef<Value *>, Value *)> fn,
    function_ref<void()> prologue) {
  SmallVector<int64_t, 4> slots{slot(n)};
  SmallVector<int, 2> bufOf; // operand -> index into the buffers, or -1
  for (const Node *o : n.operands) {
    Storage s = storage(o);
    bufOf.push_back(s == Storage::Immediate ? -1 : int(slots.size()));
    if (s != Storage::Immediate)
      slots.push_back(s == Storage::Splat ? slot(o->operands[0]) : slot(o));
  }
  if (beginKernel(n, slots.size())) {
    if (prologue)
      prologue();
    loop(current.begin, current.end, [&](Value *i) {
      SmallVector<Value *, 2> args;
      for (size_t k = 0; k < n.operands.size(); ++k) {
        const Node *o = n.operands[k];
        if (bufOf[k] < 0)
          args.push_back(cf(o->floatAttr("value")));
        else
          args.push_back(load(elemType(*o), current.buf[bufOf[k]],
                              storage(o) == Storage::Splat ? c64(0) : i));
      }
      store(fn(args, i), current.buf[0], i);
    });
  }
  launch(slots, *numElements(n.type.shape), kElementGrain);
}

Value *KernelBuilder::entrySlot(int64_t s) {
  Type *ptr = eb->getPtrTy();
  return eb->CreateLoad(
      ptr, eb->CreateConstInBoundsGEP1_64(ptr, entry->getArg(0), s));
}

Value *KernelBuilder::entrySlotOrNull(int64_t s) {
  if (s >= 0)
    return entrySlot(s);
  return ConstantPointerNull::get(eb->getPtrTy());
}

void KernelBuilder::callMatMul(ArrayRef<Value *> mmArgs, Value *epilogue) {
  Module &m0 = *parts[0]->m;
  Type *ptr = eb->getPtrTy(), *i64e = eb->getInt64Ty(),
       *i32e = eb->getInt32Ty();
  FunctionCallee matmul = m0.getOrInsertFunction(
      kRtMatMul, eb->getVoidTy(), ptr, ptr, ptr, ptr, i64e, i64e, i64e, i64e,
      i32e, i64e, i64e, i64e, ptr, i64e, i64e, ptr, ptr, ptr, ptr, i64e, i64e);
  SmallVector<Value *, 16> all{entry->getArg(1)};
  all.append(mmArgs.begin(), mmArgs.end());
  GlobalVariable *table = opts.externalGemmKernels
                              ? declareGemmKernels(m0, opts.gemm)
                              : emitGemmKernels(m0, opts.gemm);
  all.append({table, eb->getInt64(opts.gemm.mr), eb->getInt64(opts.gemm.nr())});
  Value *null = ConstantPointerNull::get(cast<PointerType>(ptr));
  all.append({epilogue ? epilogue : null, epilogue ? args : null});
  if (perProduct.task)
    all.append({perProduct.task, perProduct.args,
                eb->getInt64(perProduct.count),
                eb->getInt64(perProduct.grain)});
  else
    all.append({null, null, eb->getInt64(0), eb->getInt64(0)});
  perProduct.task = nullptr;
  eb->CreateCall(matmul, all);
}

Expected<std::vector<ModulePart>> KernelBuilder::finish() {
  assert(!perProduct.task && "a deferred task outlived its node's GEMM");
  if (entry != step) {
    eb->CreateRetVoid();
    entry = step;
    eb->SetInsertPoint(&step->back());
  }
  // Each updated leaf receives its new value in the caller's buffer.
  for (const BufferPlan::Copy &c : plan_.endCopies)
    eb->CreateMemCpy(entrySlot(c.to), Align(4), entrySlot(c.from), Align(4),
                     c.bytes);
  eb->CreateRetVoid();

  std::vector<ModulePart> out;
  for (auto &p : parts) {
    if (opts.vectorWidth)
      for (Function &f : *p->m)
        if (!f.isDeclaration())
          f.addFnAttr("prefer-vector-width", std::to_string(opts.vectorWidth));
    std::string err;
    raw_string_ostream os(err);
    if (verifyModule(*p->m, &os))
      return makeError("internal error: invalid LLVM IR for @" + g.name + ": " +
                       os.str());
    out.push_back({std::move(p->ctx), std::move(p->m)});
  }
  parts.clear();
  return std::move(out);
}

//===-- IR helpers
//---------------------------------------------------------===//

Value *KernelBuilder::cf(double v) { return ConstantFP::get(f32(), v); }

Value *KernelBuilder::load(Type *t, Value *base, Value *idx) {
  return b().CreateLoad(t, b().CreateInBoundsGEP(t, base, idx));
}

void KernelBuilder::store(Value *v, Value *base, Value *idx) {
  b().CreateStore(v, b().CreateInBoundsGEP(v->getType(), base, idx));
}

Value *KernelBuilder::reassocAdd(Value *x, Value *y) {
  auto *i = cast<Instruction>(b().CreateFAdd(x, y));
  i->setHasAllowReassoc(true);
  return i;
}

BranchInst *KernelBuilder::loop(Value *lo, Value *hi,
                                function_ref<void(Value *)> bodyFn) {
  Function *f = b().GetInsertBlock()->getParent();
  LLVMContext &ctx = f->getContext();
  BasicBlock *pre = b().GetInsertBlock();
  BasicBlock *bodyBB = BasicBlock::Create(ctx, "loop", f);
  BasicBlock *exit = BasicBlock::Create(ctx, "loop.end", f);
  b().CreateCondBr(b().CreateICmpSLT(lo, hi), bodyBB, exit);
  b().SetInsertPoint(bodyBB);
  PHINode *i = b().CreatePHI(i64(), 2, "i");
  i->addIncoming(lo, pre);
  bodyFn(i);
  Value *next = add(i, c64(1));
  i->addIncoming(next, b().GetInsertBlock());
  BranchInst *latch =
      b().CreateCondBr(b().CreateICmpSLT(next, hi), bodyBB, exit);
  b().SetInsertPoint(exit);
  return latch;
}

void KernelBuilder::rolledLoop(int64_t n, function_ref<void(Value *)> bodyFn) {
  BranchInst *latch = loop(c64(0), c64(n), bodyFn);
  LLVMContext &ctx = latch->getContext();
  Metadata *noUnroll[] = {MDString::get(ctx, "llvm.loop.unroll.disable")};
  Metadata *ops[] = {nullptr, MDNode::get(ctx, noUnroll)};
  MDNode *id = MDNode::getDistinct(ctx, ops);
  id->replaceOperandWith(0, id);
  latch->setMetadata(LLVMContext::MD_loop, id);
}

AllocaInst *KernelBuilder::var(Type *t, Value *init) {
  Function *f = b().GetInsertBlock()->getParent();
  IRBuilder<> at(&f->getEntryBlock(), f->getEntryBlock().begin());
  AllocaInst *a = at.CreateAlloca(t);
  set(a, init);
  return a;
}

SmallVector<Value *, 4> KernelBuilder::unravel(Value *flat,
                                               ArrayRef<int64_t> shape) {
  SmallVector<Value *, 4> idx(shape.size());
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) {
      idx[d] = c64(0);
      continue;
    }
    idx[d] = d == 0 ? flat : b().CreateURem(flat, c64(shape[d]));
    if (d > 0)
      flat = b().CreateUDiv(flat, c64(shape[d]));
  }
  return idx;
}

Value *KernelBuilder::stridedOffset(Value *flat, ArrayRef<int64_t> shape,
                                    ArrayRef<int64_t> strides, int64_t base) {
  Value *at = c64(base);
  auto idx = unravel(flat, shape);
  for (size_t d = 0; d < shape.size(); ++d)
    if (strides[d] != 0 && shape[d] != 1)
      at = add(at, mul(idx[d], strides[d]));
  return at;
}

Value *KernelBuilder::libm(StringRef name, Value *x) {
  FunctionCallee fc = part().m->getOrInsertFunction(name, f32(), f32());
  auto *fn = cast<Function>(fc.getCallee());
  fn->setDoesNotAccessMemory();
  fn->setDoesNotThrow();
  fn->setWillReturn();
  return b().CreateCall(fc, x);
}

Value *KernelBuilder::nanMax(Value *acc, Value *x) {
  Value *take = b().CreateOr(isNaN(x), b().CreateFCmpOGT(x, acc));
  return b().CreateSelect(isNaN(acc), acc, b().CreateSelect(take, x, acc));
}

KernelBuilder::WindowPos KernelBuilder::window(Value *oh, Value *ow, Value *kh,
                                               Value *kw, int64_t stride,
                                               int64_t pad, int64_t H,
                                               int64_t W) {
  Value *ih = b().CreateAdd(b().CreateSub(mul(oh, stride), c64(pad)), kh);
  Value *iw = b().CreateAdd(b().CreateSub(mul(ow, stride), c64(pad)), kw);
  // Without padding every window of the output lies inside the image.
  if (pad == 0)
    return {ih, iw, b().getTrue()};
  Value *inside = b().CreateAnd(b().CreateAnd(b().CreateICmpSGE(ih, c64(0)),
                                              b().CreateICmpSLT(ih, c64(H))),
                                b().CreateAnd(b().CreateICmpSGE(iw, c64(0)),
                                              b().CreateICmpSLT(iw, c64(W))));
  return {ih, iw, inside};
}

void KernelBuilder::checkIndex(Value *id, int64_t limit, const Node &n) {
  LLVMContext &ctx = *part().ctx;
  Value *ok = b().CreateAnd(b().CreateICmpSGE(id, b().getInt32(0)),
                            b().CreateICmpSLT(id, b().getInt32(limit)));
  Type *ptr = b().getPtrTy();
  FunctionCallee fail = part().m->getOrInsertFunction(kRtFail, b().getVoidTy(),
                                                      ptr, i64(), i64());
  Function *fn = b().GetInsertBlock()->getParent();
  BasicBlock *bad = BasicBlock::Create(ctx, "out_of_range", fn);
  BasicBlock *good = BasicBlock::Create(ctx, "in_range", fn);
  b().CreateCondBr(ok, good, bad, MDBuilder(ctx).createLikelyBranchWeights());
  b().SetInsertPoint(bad);
  b().CreateCall(fail,
                 {current.rt, c64(nodeIndex(n)), b().CreateSExt(id, i64())});
  b().CreateRetVoid();
  b().SetInsertPoint(good);
}

Value *KernelBuilder::dropoutKey(const Node &n) {
  FunctionCallee key = part().m->getOrInsertFunction(kRtDropoutKey, i64(),
                                                     b().getPtrTy(), i64());
  return b().CreateCall(key, {current.rt, c64(n.intAttr("seed"))});
}

Value *IRScalar::unit53(Value *z) {
  Type *f64 = b().getDoubleTy();
  return b().CreateFMul(b().CreateUIToFP(b().CreateLShr(z, 11), f64),
                        ConstantFP::get(f64, 0x1.0p-53));
}
