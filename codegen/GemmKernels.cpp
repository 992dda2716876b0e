//===- GemmKernels.cpp - GEMM micro-kernels generated for the target ------===//
//
// The runtime GEMM (runtime/Gemm.cpp) blocks and packs; the arithmetic is
// done by micro-kernels that each module carries, generated here for the
// vector width and register file of the CPU being compiled for. Kernel R
// keeps an R x NR tile of C in R * NV vector accumulators across the K loop:
// per k it loads NV vectors of B's strip, broadcasts R adjacent elements of
// A (a column of the tile's rows: packed, or A^T read in place) and issues
// R * NV `llvm.fmuladd`s, which become FMA instructions where the CPU has
// them (vfmadd231ps on ymm or zmm registers). The packing variant of each
// kernel reads B where it lies and stores each row it loads into the packed
// strip as well, so packing B rides along with the first tile's FMAs.
//
//===----------------------------------------------------------------------===//
#include "codegen/Codegen.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Intrinsics.h"
#include "llvm/IR/Module.h"

using namespace kiln;
using namespace llvm;

MicroTile kiln::chooseMicroTile(unsigned vectorBits, unsigned registers) {
  MicroTile t;
  t.width = std::max(vectorBits, 128u) / 32;
  t.nv = 2;
  // 16 registers: 6 x 2 accumulators + 2 of B + 1 broadcast (+ 1 spare for
  // a separate multiply and add without FMA). 6 x 2 beat 4 x 3 on a Zen 3
  // core, 81 against 44 GFLOP/s. 32 registers: 12 x 2.
  t.mr = registers >= 32 ? 12 : 6;
  return t;
}

namespace {

/// `!llvm.loop` metadata asking for the loop to be unrolled `count` times
/// and not vectorized (its body is vector code already).
MDNode *unrollBy(LLVMContext &ctx, unsigned count) {
  Type *i32 = Type::getInt32Ty(ctx);
  Metadata *unroll[] = {MDString::get(ctx, "llvm.loop.unroll.count"),
                        ConstantAsMetadata::get(ConstantInt::get(i32, count))};
  Metadata *novec[] = {MDString::get(ctx, "llvm.loop.vectorize.enable"),
                       ConstantAsMetadata::get(ConstantInt::getFalse(ctx))};
  Metadata *ops[] = {nullptr, MDNode::get(ctx, unroll),
                     MDNode::get(ctx, novec)};
  MDNode *id = MDNode::getDistinct(ctx, ops);
  id->replaceOperandWith(0, id);
  return id;
}

/// void kiln.gemm.kernel<R>[.pack](i64 kc, ptr a, i64 lda, ptr b, i64 ldb,
///                                 ptr bpack, ptr c, i64 ldc, i64 nr,
///                                 i32 overwrite)
/// with the semantics of kiln::GemmMicroKernel; `packB` makes the packing
/// kernel, which reads op(B) in place and writes the strip it reads.
Function *emitKernel(Module &m, const MicroTile &t, unsigned R, bool packB) {
  LLVMContext &ctx = m.getContext();
  IRBuilder<> b(ctx);
  Type *f32 = b.getFloatTy(), *i64 = b.getInt64Ty(), *ptr = b.getPtrTy();
  auto *vec = FixedVectorType::get(f32, t.width);
  const unsigned NV = t.nv, W = t.width, NR = t.nr();
  auto *fty = FunctionType::get(
      b.getVoidTy(),
      {i64, ptr, i64, ptr, i64, ptr, ptr, i64, i64, b.getInt32Ty()}, false);
  // Hidden rather than internal: JITLink drops local symbols' names, and a
  // perf map (codegen/PerfMap.h) needs them.
  Function *f = Function::Create(
      fty, Function::ExternalLinkage,
      "kiln.gemm.kernel" + Twine(R) + (packB ? ".pack" : ""), m);
  f->setVisibility(GlobalValue::HiddenVisibility);
  f->addFnAttr(Attribute::NoUnwind);
  const char *names[] = {"kc",    "a", "lda", "b",  "ldb",
                         "bpack", "c", "ldc", "nr", "overwrite"};
  for (unsigned i = 0; i < fty->getNumParams(); ++i)
    f->getArg(i)->setName(names[i]);
  for (unsigned i : {1, 3, 5, 6})
    f->addParamAttr(i, Attribute::NoAlias);
  f->addParamAttr(1, Attribute::ReadOnly);
  f->addParamAttr(3, Attribute::ReadOnly);
  Value *kc = f->getArg(0), *a = f->getArg(1), *lda = f->getArg(2),
        *bp = f->getArg(3), *ldb = f->getArg(4), *bpack = f->getArg(5),
        *c = f->getArg(6), *ldc = f->getArg(7), *nr = f->getArg(8);

  BasicBlock *entry = BasicBlock::Create(ctx, "entry", f);
  BasicBlock *body = BasicBlock::Create(ctx, "k.loop", f);
  BasicBlock *done = BasicBlock::Create(ctx, "k.done", f);
  b.SetInsertPoint(entry);
  Value *overwrite = b.CreateICmpNE(f->getArg(9), b.getInt32(0));
  // masks[v]: which lanes of vector v of a row are among the nr columns.
  SmallVector<Value *, 4> masks;
  for (unsigned v = 0; v < NV; ++v) {
    SmallVector<Constant *, 16> lanes;
    for (unsigned l = 0; l < W; ++l)
      lanes.push_back(b.getInt64(v * W + l));
    masks.push_back(b.CreateICmpSLT(ConstantVector::get(lanes),
                                    b.CreateVectorSplat(W, nr)));
  }
  b.CreateBr(body);

  // The K loop (kc >= 1): acc[r][v] += a[r, k] * b[k, v].
  b.SetInsertPoint(body);
  PHINode *k = b.CreatePHI(i64, 2, "k");
  PHINode *ak = b.CreatePHI(ptr, 2, "a.k"); // &a[k*lda]
  PHINode *bk = b.CreatePHI(ptr, 2, "b.k");
  PHINode *pk = packB ? b.CreatePHI(ptr, 2, "bpack.k") : nullptr;
  SmallVector<PHINode *, 32> acc;
  for (unsigned i = 0; i < R * NV; ++i)
    acc.push_back(b.CreatePHI(vec, 2, "acc"));
  k->addIncoming(b.getInt64(0), entry);
  ak->addIncoming(a, entry);
  bk->addIncoming(bp, entry);
  if (packB)
    pk->addIncoming(bpack, entry);
  for (PHINode *p : acc)
    p->addIncoming(Constant::getNullValue(vec), entry);
  SmallVector<Value *, 4> bv;
  for (unsigned v = 0; v < NV; ++v) {
    Value *at = b.CreateConstInBoundsGEP1_64(f32, bk, v * W);
    if (!packB) {
      bv.push_back(b.CreateAlignedLoad(vec, at, Align(W * 4)));
      continue;
    }
    bv.push_back(b.CreateMaskedLoad(vec, at, Align(4), masks[v],
                                    Constant::getNullValue(vec)));
    b.CreateAlignedStore(
        bv.back(), b.CreateConstInBoundsGEP1_64(f32, pk, v * W), Align(W * 4));
  }
  Function *fmuladd = Intrinsic::getDeclaration(&m, Intrinsic::fmuladd, {vec});
  SmallVector<Value *, 32> sum(R * NV); // the tile after this k
  for (unsigned r = 0; r < R; ++r) {
    Value *x = b.CreateLoad(f32, b.CreateConstInBoundsGEP1_64(f32, ak, r));
    Value *splat = b.CreateVectorSplat(W, x);
    for (unsigned v = 0; v < NV; ++v) {
      PHINode *p = acc[r * NV + v];
      sum[r * NV + v] = b.CreateCall(fmuladd, {splat, bv[v], p});
      p->addIncoming(sum[r * NV + v], body);
    }
  }
  Value *kNext = b.CreateAdd(k, b.getInt64(1), "", true, true);
  k->addIncoming(kNext, body);
  ak->addIncoming(b.CreateInBoundsGEP(f32, ak, lda), body);
  bk->addIncoming(packB ? b.CreateInBoundsGEP(f32, bk, ldb)
                        : b.CreateConstInBoundsGEP1_64(f32, bk, NR),
                  body);
  if (packB)
    pk->addIncoming(b.CreateConstInBoundsGEP1_64(f32, pk, NR), body);
  b.CreateCondBr(b.CreateICmpSLT(kNext, kc), body, done)
      ->setMetadata(LLVMContext::MD_loop, unrollBy(ctx, 4));

  // The tile goes to C whole, or with masked loads and stores when only
  // nr < NR of its columns exist.
  b.SetInsertPoint(done);
  BasicBlock *whole = BasicBlock::Create(ctx, "store.whole", f);
  BasicBlock *part = BasicBlock::Create(ctx, "store.part", f);
  b.CreateCondBr(b.CreateICmpEQ(nr, b.getInt64(NR)), whole, part);
  // loadC(at, v) and storeC(x, at, v) access vector v of a row. C is read
  // only when the tile adds to it (not in the first K block).
  auto storeTile = [&](function_ref<Value *(Value *, unsigned)> loadC,
                       function_ref<void(Value *, Value *, unsigned)> storeC) {
    BasicBlock *set = BasicBlock::Create(ctx, "set", f);
    BasicBlock *add = BasicBlock::Create(ctx, "add", f);
    b.CreateCondBr(overwrite, set, add);
    for (BasicBlock *bb : {set, add}) {
      b.SetInsertPoint(bb);
      for (unsigned r = 0; r < R; ++r) {
        Value *row =
            b.CreateInBoundsGEP(f32, c, b.CreateMul(ldc, b.getInt64(r)));
        for (unsigned v = 0; v < NV; ++v) {
          Value *at = b.CreateConstInBoundsGEP1_64(f32, row, v * W);
          Value *tile = sum[r * NV + v];
          storeC(bb == set ? tile : b.CreateFAdd(loadC(at, v), tile), at, v);
        }
      }
      b.CreateRetVoid();
    }
  };
  b.SetInsertPoint(whole);
  storeTile([&](Value *at,
                unsigned) { return b.CreateAlignedLoad(vec, at, Align(4)); },
            [&](Value *x, Value *at, unsigned) {
              b.CreateAlignedStore(x, at, Align(4));
            });
  b.SetInsertPoint(part);
  storeTile(
      [&](Value *at, unsigned v) {
        return b.CreateMaskedLoad(vec, at, Align(4), masks[v],
                                  Constant::getNullValue(vec));
      },
      [&](Value *x, Value *at, unsigned v) {
        b.CreateMaskedStore(x, at, Align(4), masks[v]);
      });
  return f;
}

} // namespace

GlobalVariable *kiln::emitGemmKernels(Module &m, const MicroTile &tile) {
  if (GlobalVariable *table = m.getGlobalVariable(kGemmKernelsName))
    return table;
  SmallVector<Constant *, 16> fns;
  for (unsigned r = 1; r <= tile.mr; ++r)
    fns.push_back(emitKernel(m, tile, r, /*packB=*/false));
  // Only whole tiles pack: the first tile of a strip is one unless M is
  // tiny, and each kernel adds to every module's compile time.
  fns.push_back(emitKernel(m, tile, tile.mr, /*packB=*/true));
  auto *type = ArrayType::get(PointerType::get(m.getContext(), 0), fns.size());
  return new GlobalVariable(m, type, /*isConstant=*/true,
                            GlobalValue::ExternalLinkage,
                            ConstantArray::get(type, fns), kGemmKernelsName);
}

GlobalVariable *kiln::declareGemmKernels(Module &m, const MicroTile &tile) {
  if (GlobalVariable *table = m.getGlobalVariable(kGemmKernelsName))
    return table;
  auto *type = ArrayType::get(PointerType::get(m.getContext(), 0), tile.mr + 1);
  return new GlobalVariable(m, type, /*isConstant=*/true,
                            GlobalValue::ExternalLinkage, nullptr,
                            kGemmKernelsName);
}
