//===- Conv.cpp - 2-D convolution and pooling
//------------------------------===//
//
// NCHW images, OIHW weights, square windows with {stride} and zero {pad}, as
// torch.nn.functional.conv2d / max_pool2d / avg_pool2d. Max pooling pads
// with -inf; average pooling counts the padding (count_include_pad=True).
// The interpreter's convolution is im2col followed by Eigen's GEMM.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include <Eigen/Core>
#include <cmath>
#include <limits>

using namespace kiln;

namespace {

struct Window {
  int64_t size, stride, pad;
};

llvm::Expected<Window> windowOf(const Node &n, int64_t size) {
  auto stride = n.getInt("stride");
  auto pad = n.getInt("pad");
  if (!stride || !pad)
    return llvm::joinErrors(stride.takeError(), pad.takeError());
  // Each bound on its own, so that the message names the one broken.
  auto bad = [&](const char *what, int64_t v, const char *bound) {
    return makeError("'" + n.info().mnemonic + "' needs " + what + " " + bound +
                     ", got " + llvm::Twine(v));
  };
  if (size < 1)
    return bad("size", size, ">= 1");
  if (*stride < 1)
    return bad("stride", *stride, ">= 1");
  if (*pad < 0)
    return bad("pad", *pad, ">= 0");
  // Larger windows or pads give no shape within kMaxElements, and bounding
  // them keeps outExtent's arithmetic inside int64.
  if (size > kMaxElements)
    return bad("size", size, "<= 2^40");
  if (*pad > kMaxElements)
    return bad("pad", *pad, "<= 2^40");
  return Window{size, *stride, *pad};
}

/// Output extent of one spatial axis, or an error if the window does not fit.
llvm::Expected<int64_t> outExtent(const Node &n, int64_t in, const Window &w) {
  int64_t padded = in + 2 * w.pad;
  if (w.size > padded)
    return makeError("'" + n.info().mnemonic + "' window of size " +
                     llvm::Twine(w.size) + " does not fit input extent " +
                     llvm::Twine(in) + " with pad " + llvm::Twine(w.pad));
  return (padded - w.size) / w.stride + 1;
}

// conv2d {stride, pad}: x [N, C, H, W], w [O, C, KH, KW] -> [N, O, H', W'].
llvm::Expected<TensorType> shapeConv2d(const Node &n) {
  const TensorType &x = n.operands[0]->type, &w = n.operands[1]->type;
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  if (x.rank() != 4 || w.rank() != 4 || x.dtype != w.dtype ||
      x.shape[1] != w.shape[1])
    return makeError("conv2d needs x [N, C, H, W] and w [O, C, KH, KW], got " +
                     x.str() + " and " + w.str());
  if (w.shape[2] != w.shape[3])
    return makeError("conv2d needs a square kernel, got " + w.str());
  auto win = windowOf(n, w.shape[2]);
  if (!win)
    return win.takeError();
  auto h = outExtent(n, x.shape[2], *win);
  if (!h)
    return h.takeError();
  auto wd = outExtent(n, x.shape[3], *win);
  if (!wd)
    return wd.takeError();
  return TensorType{x.dtype, {x.shape[0], w.shape[0], *h, *wd}};
}

template <typename T>
using RowMajor =
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// One image's geometry for im2col and col2im.
struct Geometry {
  int64_t C, H, W, K, OH, OW, stride, pad;
};

/// cols[(c, kh, kw), (oh, ow)] = x[c, oh*s - p + kh, ow*s - p + kw], or
/// `padValue` outside the image.
template <typename T>
void im2col(const Geometry &g, const T *x, T padValue, T *cols) {
  int64_t P = g.OH * g.OW;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t kh = 0; kh < g.K; ++kh)
      for (int64_t kw = 0; kw < g.K; ++kw) {
        T *row = cols + ((c * g.K + kh) * g.K + kw) * P;
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            int64_t ih = oh * g.stride - g.pad + kh;
            int64_t iw = ow * g.stride - g.pad + kw;
            bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
            row[oh * g.OW + ow] =
                inside ? x[(c * g.H + ih) * g.W + iw] : padValue;
          }
      }
}

/// The adjoint of im2col: adds each column entry back into its pixel.
template <typename T> void col2im(const Geometry &g, const T *cols, T *x) {
  int64_t P = g.OH * g.OW;
  std::fill_n(x, g.C * g.H * g.W, T(0));
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t kh = 0; kh < g.K; ++kh)
      for (int64_t kw = 0; kw < g.K; ++kw) {
        const T *row = cols + ((c * g.K + kh) * g.K + kw) * P;
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            int64_t ih = oh * g.stride - g.pad + kh;
            int64_t iw = ow * g.stride - g.pad + kw;
            if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
              x[(c * g.H + ih) * g.W + iw] += row[oh * g.OW + ow];
          }
      }
}

template <typename T>
void evalConv2d(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                EvalContext &) {
  llvm::ArrayRef<int64_t> xs = in[0]->shape(), ws = in[1]->shape(),
                          ys = out.shape();
  int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3];
  int64_t O = ws[0], K = ws[2], OH = ys[2], OW = ys[3];
  Geometry g{C, H, W, K, OH, OW, n.intAttr("stride"), n.intAttr("pad")};
  RowMajor<T> cols(C * K * K, OH * OW);
  Eigen::Map<const RowMajor<T>> w(in[1]->data<T>(), O, C * K * K);
  for (int64_t b = 0; b < N; ++b) {
    im2col(g, in[0]->data<T>() + b * C * H * W, T(0), cols.data());
    Eigen::Map<RowMajor<T>> y(out.data<T>() + b * O * OH * OW, O, OH * OW);
    y.noalias() = w * cols;
  }
}

/// The output extents [OH, OW] of a window op on a float x [N, C, H, W]
/// with attributes {size, stride, pad}; pooling's pad is at most half the
/// size, as in PyTorch.
llvm::Expected<std::pair<int64_t, int64_t>> windowExtents(const Node &n,
                                                          bool pooling) {
  const TensorType &x = n.operands[0]->type;
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  if (auto e = expectRank(n, 0, 4))
    return std::move(e);
  auto size = n.getInt("size");
  if (!size)
    return size.takeError();
  auto win = windowOf(n, *size);
  if (!win)
    return win.takeError();
  if (pooling && win->pad * 2 > *size)
    return makeError("'" + n.info().mnemonic +
                     "' needs pad at most half the size");
  auto h = outExtent(n, x.shape[2], *win);
  if (!h)
    return h.takeError();
  auto w = outExtent(n, x.shape[3], *win);
  if (!w)
    return w.takeError();
  return std::pair{*h, *w};
}

// max_pool2d, avg_pool2d {size, stride, pad}: x [N, C, H, W].
llvm::Expected<TensorType> shapePool(const Node &n) {
  auto hw = windowExtents(n, /*pooling=*/true);
  if (!hw)
    return hw.takeError();
  const TensorType &x = n.operands[0]->type;
  return TensorType{x.dtype, {x.shape[0], x.shape[1], hw->first, hw->second}};
}

template <typename T>
void evalPool(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
              EvalContext &) {
  llvm::ArrayRef<int64_t> xs = in[0]->shape(), ys = out.shape();
  int64_t H = xs[2], W = xs[3], OH = ys[2], OW = ys[3];
  int64_t k = n.intAttr("size"), s = n.intAttr("stride"), p = n.intAttr("pad");
  bool isMax = n.op == Op::MaxPool2d;
  const T *x = in[0]->data<T>();
  T *y = out.data<T>();
  for (int64_t plane = 0; plane < xs[0] * xs[1]; ++plane)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        T acc = isMax ? -std::numeric_limits<T>::infinity() : T(0);
        for (int64_t kh = 0; kh < k; ++kh)
          for (int64_t kw = 0; kw < k; ++kw) {
            int64_t ih = oh * s - p + kh, iw = ow * s - p + kw;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
              continue;
            T v = x[(plane * H + ih) * W + iw];
            if (!isMax)
              acc += v;
            else if (std::isnan(v) || v > acc)
              acc = std::isnan(acc) ? acc : v;
          }
        y[(plane * OH + oh) * OW + ow] = isMax ? acc : acc / T(k * k);
      }
}

// unfold2d {size, stride, pad, value}: x [N, C, H, W] -> [N, C*K*K, OH*OW],
// padding with `value` (0 for convolution, -inf for max pooling).
// Any pad: convolution's may exceed half the kernel (PyTorch allows it).
llvm::Expected<TensorType> shapeUnfold(const Node &n) {
  auto hw = windowExtents(n, /*pooling=*/false);
  if (!hw)
    return hw.takeError();
  if (auto v = n.getFloat("value"); !v)
    return v.takeError();
  const TensorType &x = n.operands[0]->type;
  int64_t size = n.intAttr("size");
  auto rows = numElements({x.shape[1], size, size});
  auto cols = numElements({hw->first, hw->second});
  if (!rows || !cols)
    return makeError("'unfold2d' of " + x.str() + " with size " +
                     llvm::Twine(size) + " has too many elements");
  return TensorType{x.dtype, {x.shape[0], *rows, *cols}};
}

template <typename T>
void evalUnfold(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                EvalContext &) {
  llvm::ArrayRef<int64_t> xs = in[0]->shape();
  int64_t k = n.intAttr("size"), s = n.intAttr("stride"), p = n.intAttr("pad");
  int64_t OH = (xs[2] + 2 * p - k) / s + 1, OW = (xs[3] + 2 * p - k) / s + 1;
  Geometry g{xs[1], xs[2], xs[3], k, OH, OW, s, p};
  int64_t image = xs[1] * xs[2] * xs[3], cols = out.numel() / xs[0];
  for (int64_t b = 0; b < xs[0]; ++b)
    im2col(g, in[0]->data<T>() + b * image, T(n.floatAttr("value")),
           out.data<T>() + b * cols);
}

// fold2d {size, stride, pad, shape = [H, W]}: [N, C*K*K, OH*OW] -> [N, C, H,
// W], adding overlapping entries: unfold2d's adjoint.
llvm::Expected<TensorType> shapeFold(const Node &n) {
  const TensorType &c = n.operands[0]->type;
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  if (auto e = expectRank(n, 0, 3))
    return std::move(e);
  auto hw = n.getInts("shape");
  auto size = n.getInt("size");
  if (!hw || !size)
    return llvm::joinErrors(hw.takeError(), size.takeError());
  auto win = windowOf(n, *size);
  if (!win)
    return win.takeError();
  auto window = numElements({*size, *size});
  if (hw->size() != 2 || !window || c.shape[1] % *window ||
      llvm::any_of(*hw, [](int64_t d) { return d < 1 || d > kMaxElements; }))
    return makeError("fold2d of " + c.str() +
                     " needs shape [H, W] and rows "
                     "divisible by size^2");
  auto oh = outExtent(n, (*hw)[0], *win);
  if (!oh)
    return oh.takeError();
  auto ow = outExtent(n, (*hw)[1], *win);
  if (!ow)
    return ow.takeError();
  auto columns = numElements({*oh, *ow});
  if (!columns || *columns != c.shape[2])
    return makeError(
        "fold2d of " + c.str() + " to " + shapeStr(*hw) + " needs " +
        (columns ? llvm::Twine(*columns) : llvm::Twine("more")) + " columns");
  return TensorType{c.dtype,
                    {c.shape[0], c.shape[1] / *window, (*hw)[0], (*hw)[1]}};
}

template <typename T>
void evalFold(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
              EvalContext &) {
  llvm::ArrayRef<int64_t> ys = out.shape();
  int64_t k = n.intAttr("size"), s = n.intAttr("stride"), p = n.intAttr("pad");
  int64_t OH = (ys[2] + 2 * p - k) / s + 1, OW = (ys[3] + 2 * p - k) / s + 1;
  Geometry g{ys[1], ys[2], ys[3], k, OH, OW, s, p};
  int64_t image = ys[1] * ys[2] * ys[3], cols = in[0]->numel() / ys[0];
  for (int64_t b = 0; b < ys[0]; ++b)
    col2im(g, in[0]->data<T>() + b * cols, out.data<T>() + b * image);
}

/// Plane offsets are i32: planes [N, C, H, W] of valid shape need H*W
/// below 2^31.
llvm::Error expectI32Pixels(const Node &n, const Shape &planes) {
  if (planes[2] * planes[3] <= std::numeric_limits<int32_t>::max())
    return llvm::Error::success();
  return makeError("'" + n.info().mnemonic +
                   "' needs planes of at most 2^31 - 1 pixels, got " +
                   llvm::Twine(planes[2]) + " x " + llvm::Twine(planes[3]));
}

// max_pool2d_index {size, stride, pad}: x [N, C, H, W] -> i32 [N, C, OH, OW],
// the plane offset ih*W + iw of each window's maximum. As PyTorch's
// max_pool2d(return_indices=True): the first maximum in the window's
// row-major order, or its last NaN; a window of -inf picks its first pixel.
llvm::Expected<TensorType> shapePoolIndex(const Node &n) {
  auto pooled = shapePool(n);
  if (!pooled)
    return pooled.takeError();
  const Shape &x = n.operands[0]->type.shape;
  if (auto e = expectI32Pixels(n, x))
    return std::move(e);
  return TensorType{DType::I32, pooled->shape};
}

template <typename T>
void evalPoolIndex(const Node &n, llvm::ArrayRef<const Tensor *> in,
                   Tensor &out, EvalContext &) {
  llvm::ArrayRef<int64_t> xs = in[0]->shape(), ys = out.shape();
  int64_t H = xs[2], W = xs[3], OH = ys[2], OW = ys[3];
  int64_t k = n.intAttr("size"), s = n.intAttr("stride"), p = n.intAttr("pad");
  const T *x = in[0]->data<T>();
  int32_t *idx = out.data<int32_t>();
  for (int64_t plane = 0; plane < xs[0] * xs[1]; ++plane, x += H * W)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t h0 = std::max<int64_t>(oh * s - p, 0);
        int64_t w0 = std::max<int64_t>(ow * s - p, 0);
        int64_t best = h0 * W + w0;
        T max = -std::numeric_limits<T>::infinity();
        for (int64_t ih = h0; ih < std::min(oh * s - p + k, H); ++ih)
          for (int64_t iw = w0; iw < std::min(ow * s - p + k, W); ++iw) {
            T v = x[ih * W + iw];
            if (v > max || std::isnan(v)) {
              max = v;
              best = ih * W + iw;
            }
          }
        *idx++ = int32_t(best);
      }
}

/// plane_scatter and plane_gather: values [N, C, OH, OW] and i32 idx of the
/// same shape, and planes [N, C, H, W].
llvm::Error expectPlaneIndex(const Node &n, const TensorType &values,
                             const TensorType &planes) {
  const TensorType &idx = n.operands[1]->type;
  if (idx.dtype != DType::I32)
    return makeError("'" + n.info().mnemonic + "' needs i32 indices, got " +
                     idx.str());
  if (values.rank() != 4 || values.shape != idx.shape)
    return makeError("'" + n.info().mnemonic +
                     "' needs values [N, C, OH, OW] and indices of their "
                     "shape, got " +
                     values.str() + " and " + idx.str());
  if (planes.rank() != 4 || planes.shape[0] != idx.shape[0] ||
      planes.shape[1] != idx.shape[1])
    return makeError("'" + n.info().mnemonic + "' needs planes [" +
                     llvm::Twine(idx.shape[0]) + ", " +
                     llvm::Twine(idx.shape[1]) + ", H, W], got " +
                     planes.str());
  return llvm::Error::success();
}

// plane_scatter {shape = [H, W]}: g [N, C, OH, OW], idx -> [N, C, H, W], the
// sum of the g that idx sends to each pixel (max pooling's gradient).
llvm::Expected<TensorType> shapePlaneScatter(const Node &n) {
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  auto hw = n.getInts("shape");
  if (!hw)
    return hw.takeError();
  const TensorType &g = n.operands[0]->type;
  if (hw->size() != 2)
    return makeError("'plane_scatter' needs shape = [H, W], got " +
                     shapeStr(*hw));
  TensorType t{g.dtype,
               {g.rank() == 4 ? g.shape[0] : 1, g.rank() == 4 ? g.shape[1] : 1,
                (*hw)[0], (*hw)[1]}};
  if (auto e = expectPlaneIndex(n, g, t))
    return std::move(e);
  if (auto e = checkShape(n, t.shape))
    return std::move(e);
  if (auto e = expectI32Pixels(n, t.shape))
    return std::move(e);
  return t;
}

// plane_gather: t [N, C, H, W], idx [N, C, OH, OW] -> t at idx in each plane.
llvm::Expected<TensorType> shapePlaneGather(const Node &n) {
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  const TensorType &t = n.operands[0]->type, &idx = n.operands[1]->type;
  TensorType out{t.dtype, idx.shape};
  if (auto e = expectPlaneIndex(n, out, t))
    return std::move(e);
  if (auto e = expectI32Pixels(n, t.shape))
    return std::move(e);
  return out;
}

/// Runs f(plane, o, i) for each index idx[plane, o] = i, or fails on the
/// first outside [0, pixels).
template <typename F>
void forEachPlaneIndex(const Node &n, const Tensor &idx, int64_t pixels,
                       EvalContext &ctx, F f) {
  llvm::ArrayRef<int64_t> s = idx.shape();
  int64_t per = s[2] * s[3];
  const int32_t *id = idx.data<int32_t>();
  for (int64_t plane = 0; plane < s[0] * s[1]; ++plane)
    for (int64_t o = 0; o < per; ++o, ++id) {
      if (*id < 0 || *id >= pixels)
        return ctx.fail("'" + n.info().mnemonic + "' index " +
                        llvm::Twine(*id) + " is out of range for planes of " +
                        llvm::Twine(pixels) + " pixels");
      f(plane, o, *id);
    }
}

template <typename T>
void evalPlaneScatter(const Node &n, llvm::ArrayRef<const Tensor *> in,
                      Tensor &out, EvalContext &ctx) {
  int64_t pixels = out.shape()[2] * out.shape()[3];
  int64_t per = in[1]->shape()[2] * in[1]->shape()[3];
  const T *g = in[0]->data<T>();
  T *y = out.data<T>();
  std::fill_n(y, out.numel(), T(0));
  forEachPlaneIndex(n, *in[1], pixels, ctx,
                    [&](int64_t plane, int64_t o, int32_t i) {
                      y[plane * pixels + i] += g[plane * per + o];
                    });
}

template <typename T>
void evalPlaneGather(const Node &n, llvm::ArrayRef<const Tensor *> in,
                     Tensor &out, EvalContext &ctx) {
  int64_t pixels = in[0]->shape()[2] * in[0]->shape()[3];
  int64_t per = in[1]->shape()[2] * in[1]->shape()[3];
  const T *t = in[0]->data<T>();
  T *y = out.data<T>();
  forEachPlaneIndex(n, *in[1], pixels, ctx,
                    [&](int64_t plane, int64_t o, int32_t i) {
                      y[plane * per + o] = t[plane * pixels + i];
                    });
}

//===-- Gradient rules ---------------------------------------------------===//
// Convolution and average pooling differentiate through unfold2d/fold2d
// (im2col and its adjoint), which are each other's gradients; max pooling
// through its window maxima's indices.
using Operands = llvm::MutableArrayRef<Node *>;

Node *unfold(GradBuilder &b, Node *x, int64_t size, int64_t stride, int64_t pad,
             double value) {
  return b.op(
      Op::Unfold2d, {x},
      {{"size", size}, {"stride", stride}, {"pad", pad}, {"value", value}});
}
Node *fold(GradBuilder &b, Node *cols, const Shape &image, int64_t size,
           int64_t stride, int64_t pad) {
  return b.op(Op::Fold2d, {cols},
              {{"size", size},
               {"stride", stride},
               {"pad", pad},
               {"shape", llvm::SmallVector<int64_t, 4>{image[2], image[3]}}});
}

// y = W @ unfold(x) per image, with W = w as [O, C*K*K].
void gradConv2d(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *x = n.operands[0], *w = n.operands[1];
  const Shape &xs = x->type.shape, &ws = w->type.shape, &ys = n.type.shape;
  int64_t N = xs[0], O = ws[0], CKK = ws[1] * ws[2] * ws[3], P = ys[2] * ys[3];
  int64_t k = ws[2], s = n.intAttr("stride"), p = n.intAttr("pad");
  Node *g3 = b.reshape(g, {N, O, P});
  Node *cols = unfold(b, x, k, s, p, 0);
  Node *dW = b.op(Op::MatMul, {g3, b.transposeLast2(cols)}); // [N, O, CKK]
  d[1] = b.reshape(b.sum(dW, {0}, false), ws);
  Node *wT =
      b.broadcastTo(b.transposeLast2(b.reshape(w, {O, CKK})), {N, CKK, O});
  d[0] = fold(b, b.op(Op::MatMul, {wT, g3}), xs, k, s, p);
}

// Average pooling: the window values as [N, C, K*K, P], each output's
// gradient spread over its window. Max pooling: each output's gradient goes
// to its window's maximum (max_pool2d_index), as in PyTorch.
void gradPool(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *x = n.operands[0];
  const Shape &xs = x->type.shape, &ys = n.type.shape;
  int64_t k = n.intAttr("size"), s = n.intAttr("stride"), p = n.intAttr("pad");
  if (n.op == Op::MaxPool2d) {
    Node *idx =
        b.op(Op::MaxPool2dIndex, {x}, {{"size", k}, {"stride", s}, {"pad", p}});
    d[0] = b.op(Op::PlaneScatter, {g, idx},
                {{"shape", llvm::SmallVector<int64_t, 4>{xs[2], xs[3]}}});
    return;
  }
  int64_t N = xs[0], C = xs[1], P = ys[2] * ys[3];
  Shape windows{N, C, k * k, P};
  Node *gw = b.broadcastTo(b.reshape(g, {N, C, 1, P}), windows);
  Node *cols = b.scale(gw, 1.0 / double(k * k));
  d[0] = fold(b, b.reshape(cols, {N, C * k * k, P}), xs, k, s, p);
}

// plane_scatter and plane_gather are each other's adjoints; the indices
// have no gradient.
void gradPlaneScatter(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = b.op(Op::PlaneGather, {g, n.operands[1]});
}
void gradPlaneGather(GradBuilder &b, Node &n, Node *g, Operands d) {
  const Shape &t = n.operands[0]->type.shape;
  d[0] = b.op(Op::PlaneScatter, {g, n.operands[1]},
              {{"shape", llvm::SmallVector<int64_t, 4>{t[2], t[3]}}});
}

void gradUnfold(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = fold(b, g, n.operands[0]->type.shape, n.intAttr("size"),
              n.intAttr("stride"), n.intAttr("pad"));
}
void gradFold(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] =
      unfold(b, g, n.intAttr("size"), n.intAttr("stride"), n.intAttr("pad"), 0);
}

} // namespace

void kiln::registerConvRules(RuleTable &t) {
  t[size_t(Op::Conv2d)] = {shapeConv2d, KILN_EVAL(evalConv2d)};
  t[size_t(Op::MaxPool2d)] = {shapePool, KILN_EVAL(evalPool)};
  t[size_t(Op::AvgPool2d)] = {shapePool, KILN_EVAL(evalPool)};
  t[size_t(Op::Unfold2d)] = {shapeUnfold, KILN_EVAL(evalUnfold)};
  t[size_t(Op::Fold2d)] = {shapeFold, KILN_EVAL(evalFold)};
  t[size_t(Op::MaxPool2dIndex)] = {shapePoolIndex, KILN_EVAL(evalPoolIndex),
                                   noGradient};
  t[size_t(Op::PlaneScatter)] = {shapePlaneScatter, KILN_EVAL(evalPlaneScatter),
                                 gradPlaneScatter};
  t[size_t(Op::PlaneGather)] = {shapePlaneGather, KILN_EVAL(evalPlaneGather),
                                gradPlaneGather};
  t[size_t(Op::Conv2d)].grad = gradConv2d;
  t[size_t(Op::MaxPool2d)].grad = gradPool;
  t[size_t(Op::AvgPool2d)].grad = gradPool;
  t[size_t(Op::Unfold2d)].grad = gradUnfold;
  t[size_t(Op::Fold2d)].grad = gradFold;
}
