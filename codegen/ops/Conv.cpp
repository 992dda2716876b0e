//===- Conv.cpp - Lowering convolution, im2col, col2im and pooling --------===//
//
// conv2d is one GEMM per image from the entry point (lowerConvolution,
// shared with conv kernels, whose epilogue runs on each block of the
// product); the GEMM runs the im2col kernel on each image's rows of the
// scratch buffer just before that image's product, so that it reads them
// from cache. unfold2d is the same im2col kernel, over the whole batch;
// fold2d (col2im) sums column entries into each image plane in the
// interpreter's order; pooling is a window loop per output element, or per
// chunk of a row's outputs where the windows tile the plane. Max pooling's
// gradient finds each window's maximum once (max_pool2d_index) and adds the
// output gradient there (plane_scatter).
//
//===----------------------------------------------------------------------===//
#include "codegen/KernelBuilder.h"
#include "codegen/OpLowering.h"
#include "llvm/Analysis/VectorUtils.h"
#include <algorithm>
#include <cmath>

using namespace kiln;
using namespace llvm;

/// cols[n, (c, kh, kw), (oh, ow)] = x[n, c, oh*s - p + kh, ow*s - p + kw], or
/// padValue outside the image: x (of shape `x`) in slot inSlot, cols into
/// outSlot, by the kernel of node `sig` (with `suffix`); `perImage` defers
/// it to the next GEMM, which makes each image's rows just before its
/// product.
static void im2col(KernelBuilder &kb, const Node &sig, const Shape &x,
                   int64_t inSlot, int64_t outSlot, StringRef suffix,
                   int64_t size, int64_t stride, int64_t pad, double padValue,
                   bool perImage = false) {
  int64_t C = x[1], H = x[2], W = x[3];
  int64_t OH = (H + 2 * pad - size) / stride + 1;
  int64_t OW = (W + 2 * pad - size) / stride + 1;
  int64_t rows = x[0] * C * size * size;
  if (kb.beginKernel(sig, 2, suffix)) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    kb.loop(k.begin, k.end, [&](Value *row) {
      auto idx = kb.unravel(row, {x[0] * C, size, size}); // (n*C + c, kh, kw)
      Value *plane = kb.mul(idx[0], H * W);
      Value *dst = kb.mul(row, OH * OW);
      kb.loop(OH, [&](Value *oh) {
        Value *ih =
            b.CreateAdd(b.CreateSub(kb.mul(oh, stride), kb.c64(pad)), idx[1]);
        Value *rowIn = b.CreateAnd(b.CreateICmpSGE(ih, kb.c64(0)),
                                   b.CreateICmpSLT(ih, kb.c64(H)));
        kb.loop(OW, [&](Value *ow) {
          Value *iw =
              b.CreateAdd(b.CreateSub(kb.mul(ow, stride), kb.c64(pad)), idx[2]);
          Value *in =
              b.CreateAnd(rowIn, b.CreateAnd(b.CreateICmpSGE(iw, kb.c64(0)),
                                             b.CreateICmpSLT(iw, kb.c64(W))));
          Value *at = b.CreateSelect(
              in,
              b.CreateAdd(plane, b.CreateAdd(b.CreateMul(ih, kb.c64(W)), iw)),
              kb.c64(0));
          Value *v =
              b.CreateSelect(in, kb.loadF(k.buf[1], at), kb.cf(padValue));
          kb.store(v, k.buf[0], kb.add(dst, kb.add(kb.mul(oh, OW), ow)));
        });
      });
    });
  }
  int64_t grain = std::max<int64_t>(1, kElementGrain / (OH * OW));
  if (perImage)
    kb.launchPerProduct({outSlot, inSlot}, C * size * size, grain);
  else
    kb.launch({outSlot, inSlot}, rows, grain);
}

SmallVector<Value *, 11>
kiln::lowerConvolution(KernelBuilder &kb, const Node &sig, const Node &conv,
                       int64_t x, int64_t w, int64_t cols, int64_t y) {
  const Shape &ws = conv.operands[1]->type.shape, &ys = conv.type.shape;
  im2col(kb, sig, conv.operands[0]->type.shape, x, cols, ".im2col", ws[2],
         conv.intAttr("stride"), conv.intAttr("pad"), 0, /*perImage=*/true);
  // y[n] (O x P) = w (O x CKK) . cols[n] (CKK x P), per image.
  int64_t O = ws[0], CKK = ws[1] * ws[2] * ws[3], P = ys[2] * ys[3];
  IRBuilder<> &eb = kb.entryBuilder();
  return {kb.entrySlot(w),      kb.entrySlot(cols), kb.entrySlotOrNull(y),
          eb.getInt64(ys[0]),   eb.getInt64(O),     eb.getInt64(P),
          eb.getInt64(CKK),     eb.getInt32(0),     eb.getInt64(0),
          eb.getInt64(CKK * P), eb.getInt64(O * P)};
}

static void lowerConv2d(KernelBuilder &kb, const Node &n) {
  kb.callMatMul(
      lowerConvolution(kb, n, n, kb.slot(n.operands[0]), kb.slot(n.operands[1]),
                       kb.plan().colsOf[kb.nodeIndex(n)], kb.slot(n)));
}

static void lowerUnfold(KernelBuilder &kb, const Node &n) {
  im2col(kb, n, n.operands[0]->type.shape, kb.slot(n.operands[0]), kb.slot(n),
         "", n.intAttr("size"), n.intAttr("stride"), n.intAttr("pad"),
         n.floatAttr("value"));
}

/// col2im: each image plane sums the column entries that read it, in the
/// interpreter's order.
static void lowerFold(KernelBuilder &kb, const Node &n) {
  const Shape &y = n.type.shape;
  int64_t C = y[1], H = y[2], W = y[3], size = n.intAttr("size");
  int64_t s = n.intAttr("stride"), p = n.intAttr("pad");
  int64_t OH = (H + 2 * p - size) / s + 1, OW = (W + 2 * p - size) / s + 1;
  if (kb.beginKernel(n, 2)) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    LLVMContext &ctx = b.getContext();
    kb.loop(k.begin, k.end, [&](Value *plane) { // n*C + c
      Value *img = kb.mul(plane, H * W);
      kb.loop(H * W,
              [&](Value *i) { kb.store(kb.cf(0), k.buf[0], kb.add(img, i)); });
      Value *colRow0 = kb.mul(plane, size * size); // (n*C + c)*K*K
      kb.loop(size, [&](Value *kh) {
        kb.loop(size, [&](Value *kw) {
          Value *src =
              kb.mul(kb.add(kb.add(colRow0, kb.mul(kh, size)), kw), OH * OW);
          kb.loop(OH, [&](Value *oh) {
            kb.loop(OW, [&](Value *ow) {
              auto [ih, iw, in] = kb.window(oh, ow, kh, kw, s, p, H, W);
              BasicBlock *then = BasicBlock::Create(ctx, "inside", k.fn);
              BasicBlock *cont = BasicBlock::Create(ctx, "next", k.fn);
              b.CreateCondBr(in, then, cont);
              b.SetInsertPoint(then);
              Value *at = kb.add(img, kb.add(kb.mul(ih, W), iw));
              Value *v =
                  kb.loadF(k.buf[1], kb.add(src, kb.add(kb.mul(oh, OW), ow)));
              kb.store(b.CreateFAdd(kb.loadF(k.buf[0], at), v), k.buf[0], at);
              b.CreateBr(cont);
              b.SetInsertPoint(cont);
            });
          });
        });
      });
    });
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0])}, y[0] * C, 1);
}

/// A pooling kernel over image planes: for each output (oh, ow), or chunk
/// of a row's outputs (below), start() once; visit(v, at, inside) for each
/// window offset in row-major order,
/// with v the input at plane offset `at` (0 and a don't-care value in the
/// padding); then stores what finish() returns.
///
/// When the windows tile the plane (no padding, stride equal to size), a
/// row's outputs are computed up to kTileLanes at once (the power of two
/// that covers the row, if fewer, and at least 2): the callbacks get
/// vectors of that many lanes (start's argument), and each window row is
/// one contiguous load split into its columns by shuffles, masked at the
/// end of the row. The loop vectorizer gathered the strided pixels instead,
/// and the CNN's four pooling kernels took about four times as long. Each
/// lane visits its window in the same order, so the results are those of
/// the scalar loop.
static constexpr unsigned kTileLanes = 16;

using PoolStart = llvm::function_ref<void(unsigned lanes)>;
using PoolVisit = llvm::function_ref<void(Value *v, Value *at, Value *inside)>;
using PoolFinish = llvm::function_ref<Value *()>;

/// The tiled path of poolKernel for one plane: input at `image`, output at
/// `out`, in the open kernel `k`.
static void poolTiledPlane(KernelBuilder &kb, Kernel &k, Value *image,
                           Value *out, int64_t W, int64_t OH, int64_t OW,
                           int64_t size, PoolStart start, PoolVisit visit,
                           PoolFinish finish) {
  IRBuilder<> &b = kb.b();
  const unsigned L =
      unsigned(std::clamp<uint64_t>(PowerOf2Ceil(OW), 2, kTileLanes));
  const unsigned rowWidth = L * unsigned(size);
  auto *rowTy = FixedVectorType::get(kb.f32(), rowWidth);
  // The first `on` of `width` lanes.
  auto mask = [&](unsigned width, unsigned on) {
    SmallVector<Constant *, 64> bits;
    for (unsigned i = 0; i < width; ++i)
      bits.push_back(i < on ? b.getTrue() : b.getFalse());
    return ConstantVector::get(bits);
  };
  Value *inside = ConstantInt::getTrue(FixedVectorType::get(b.getInt1Ty(), L));
  // The outputs [ow0, ow0 + valid) of row oh; valid < L at a row's end.
  auto chunk = [&](Value *oh, Value *ow0, unsigned valid) {
    start(L);
    for (int64_t kh = 0; kh < size; ++kh) {
      Value *first = kb.add(kb.mul(kb.add(kb.mul(oh, size), kb.c64(kh)), W),
                            kb.mul(ow0, size));
      Value *ptr =
          b.CreateInBoundsGEP(kb.f32(), k.buf[1], kb.add(image, first));
      Value *row =
          valid == L
              ? static_cast<Value *>(b.CreateAlignedLoad(rowTy, ptr, Align(4)))
              : b.CreateMaskedLoad(rowTy, ptr, Align(4),
                                   mask(rowWidth, valid * unsigned(size)),
                                   Constant::getNullValue(rowTy));
      Value *firstAt = b.CreateVectorSplat(L, first);
      for (int64_t kw = 0; kw < size; ++kw) {
        SmallVector<int, 16> pick =
            createStrideMask(unsigned(kw), unsigned(size), L);
        SmallVector<Constant *, 16> offsets;
        for (int j : pick)
          offsets.push_back(b.getInt64(j));
        visit(b.CreateShuffleVector(row, pick),
              kb.add(firstAt, ConstantVector::get(offsets)), inside);
      }
    }
    Value *r = finish();
    Value *dst = b.CreateInBoundsGEP(r->getType()->getScalarType(), k.buf[0],
                                     kb.add(out, kb.add(kb.mul(oh, OW), ow0)));
    if (valid == L)
      b.CreateAlignedStore(r, dst, Align(4));
    else
      b.CreateMaskedStore(r, dst, Align(4), mask(L, valid));
  };
  kb.loop(OH, [&](Value *oh) {
    if (OW >= int64_t(L))
      kb.loop(OW / L, [&](Value *c) { chunk(oh, kb.mul(c, L), L); });
    if (OW % L)
      chunk(oh, kb.c64(OW / L * L), unsigned(OW % L));
  });
}

static void poolKernel(KernelBuilder &kb, const Node &n, PoolStart start,
                       PoolVisit visit, PoolFinish finish) {
  const Shape &x = n.operands[0]->type.shape, &y = n.type.shape;
  if (kb.beginKernel(n, 2)) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    int64_t H = x[2], W = x[3], OH = y[2], OW = y[3];
    int64_t size = n.intAttr("size"), s = n.intAttr("stride"),
            p = n.intAttr("pad");
    bool tiled = p == 0 && s == size && size <= 4;
    kb.loop(k.begin, k.end, [&](Value *plane) {
      Value *image = kb.mul(plane, H * W), *out = kb.mul(plane, OH * OW);
      if (tiled) {
        poolTiledPlane(kb, k, image, out, W, OH, OW, size, start, visit,
                       finish);
        return;
      }
      kb.loop(OH, [&](Value *oh) {
        kb.loop(OW, [&](Value *ow) {
          start(1);
          kb.loop(size, [&](Value *kh) {
            kb.loop(size, [&](Value *kw) {
              auto [ih, iw, in] = kb.window(oh, ow, kh, kw, s, p, H, W);
              Value *at =
                  b.CreateSelect(in, kb.add(kb.mul(ih, W), iw), kb.c64(0));
              visit(kb.loadF(k.buf[1], kb.add(image, at)), at, in);
            });
          });
          kb.store(finish(), k.buf[0], kb.add(out, kb.add(kb.mul(oh, OW), ow)));
        });
      });
    });
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0])}, y[0] * y[1], 1);
}

/// `t`, or a vector of `lanes` of it.
static Type *lanesOf(Type *t, unsigned lanes) {
  return lanes == 1 ? t : FixedVectorType::get(t, lanes);
}

static void lowerPool(KernelBuilder &kb, const Node &n) {
  bool isMax = n.op == Op::MaxPool2d;
  int64_t size = n.intAttr("size");
  AllocaInst *acc = nullptr;
  poolKernel(
      kb, n,
      [&](unsigned lanes) {
        Type *t = lanesOf(kb.f32(), lanes);
        acc = kb.var(t, ConstantFP::get(t, isMax ? -INFINITY : 0));
      },
      [&](Value *v, Value *, Value *in) {
        IRBuilder<> &b = kb.b();
        Value *next =
            isMax ? kb.nanMax(kb.get(acc), v) : b.CreateFAdd(kb.get(acc), v);
        kb.set(acc, b.CreateSelect(in, next, kb.get(acc)));
      },
      [&] {
        Value *sum = kb.get(acc);
        return isMax ? sum
                     : kb.b().CreateFDiv(
                           sum, ConstantFP::get(sum->getType(),
                                                double(float(size * size))));
      });
}

/// Each window's maximum as its plane offset ih*W + iw, as the
/// interpreter: the first pixel equal to the maximum, or the last NaN; the
/// first pixel inside the image if all are -inf.
static void lowerPoolIndex(KernelBuilder &kb, const Node &n) {
  AllocaInst *max = nullptr, *best = nullptr;
  poolKernel(
      kb, n,
      [&](unsigned lanes) {
        Type *f = lanesOf(kb.f32(), lanes), *i = lanesOf(kb.i64(), lanes);
        max = kb.var(f, ConstantFP::get(f, -INFINITY));
        best = kb.var(i, ConstantInt::get(i, -1, /*IsSigned=*/true));
      },
      [&](Value *v, Value *at, Value *in) {
        IRBuilder<> &b = kb.b();
        Value *current = kb.get(best);
        Value *first = b.CreateICmpSLT(
            current, Constant::getNullValue(current->getType()));
        Value *larger =
            b.CreateOr(b.CreateFCmpOGT(v, kb.get(max)), kb.isNaN(v));
        Value *take = b.CreateAnd(in, b.CreateOr(first, larger));
        kb.set(max, b.CreateSelect(take, v, kb.get(max)));
        kb.set(best, b.CreateSelect(take, at, current));
      },
      [&] {
        Value *i = kb.get(best);
        return kb.b().CreateTrunc(i, i->getType()->getWithNewType(kb.i32()));
      });
}

/// plane_scatter zeroes each output plane and adds g into it in index
/// order; plane_gather reads t at each index. Both run over planes and
/// check every index.
static void lowerPlaneIndexed(KernelBuilder &kb, const Node &n) {
  bool scatter = n.op == Op::PlaneScatter;
  const Shape &idx = n.operands[1]->type.shape;
  const Shape &planes = scatter ? n.type.shape : n.operands[0]->type.shape;
  int64_t pixels = planes[2] * planes[3], per = idx[2] * idx[3];
  if (kb.beginKernel(n, 3, "", /*unique=*/true)) {
    Kernel &k = kb.kernel();
    IRBuilder<> &b = kb.b();
    kb.loop(k.begin, k.end, [&](Value *plane) {
      Value *image = kb.mul(plane, pixels), *values = kb.mul(plane, per);
      if (scatter)
        kb.loop(pixels, [&](Value *i) {
          kb.store(kb.cf(0), k.buf[0], kb.add(image, i));
        });
      kb.loop(per, [&](Value *o) {
        Value *id = kb.load(kb.i32(), k.buf[2], kb.add(values, o));
        kb.checkIndex(id, pixels, n);
        Value *at = kb.add(image, b.CreateSExt(id, kb.i64()));
        if (scatter)
          kb.store(b.CreateFAdd(kb.loadF(k.buf[0], at),
                                kb.loadF(k.buf[1], kb.add(values, o))),
                   k.buf[0], at);
        else
          kb.store(kb.loadF(k.buf[1], at), k.buf[0], kb.add(values, o));
      });
    });
  }
  kb.launch({kb.slot(n), kb.slot(n.operands[0]), kb.slot(n.operands[1])},
            idx[0] * idx[1], std::max<int64_t>(1, kElementGrain / per));
}

void kiln::registerConvLowerings(LoweringTable &t) {
  t[size_t(Op::Conv2d)].lower = lowerConv2d;
  t[size_t(Op::Unfold2d)].lower = lowerUnfold;
  t[size_t(Op::Fold2d)].lower = lowerFold;
  t[size_t(Op::MaxPool2d)].lower = lowerPool;
  t[size_t(Op::AvgPool2d)].lower = lowerPool;
  t[size_t(Op::MaxPool2dIndex)].lower = lowerPoolIndex;
  t[size_t(Op::PlaneScatter)].lower = lowerPlaneIndexed;
  t[size_t(Op::PlaneGather)].lower = lowerPlaneIndexed;
}
