//===- Network.cpp - softmax, normalisation, dropout, embeddings ----------===//
//
// Layers with PyTorch's semantics: softmax along an axis (shifted by the
// maximum), batch_norm per channel (axis 1) with biased batch variance in
// training mode and running statistics in eval mode, layer_norm over the last
// axis, inverted dropout, embedding lookup and one-hot encoding.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include "ir/ops/Scalar.h"
#include <cmath>

using namespace kiln;

namespace {

/// A tensor viewed as [outer, len, inner] around one axis.
struct AxisView {
  int64_t outer = 1, len = 1, inner = 1;
  AxisView(llvm::ArrayRef<int64_t> shape, int64_t axis) {
    for (int64_t i = 0; i < int64_t(shape.size()); ++i)
      (i < axis ? outer : i == axis ? len : inner) *= shape[i];
  }
  int64_t at(int64_t o, int64_t i, int64_t in) const {
    return (o * len + i) * inner + in;
  }
};

llvm::Error checkMode(const Node &n) {
  auto mode = n.getString("mode");
  if (!mode)
    return mode.takeError();
  if (*mode != "train" && *mode != "eval")
    return makeError("mode of '" + n.info().mnemonic +
                     "' must be \"train\" or \"eval\", not \"" + *mode + "\"");
  return llvm::Error::success();
}

// softmax, log_softmax {axis}
llvm::Expected<TensorType> shapeSoftmax(const Node &n) {
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  auto axis = n.getInt("axis");
  if (!axis)
    return axis.takeError();
  if (auto a = normaliseAxis(n, *axis, n.operands[0]->type.rank()); !a)
    return a.takeError();
  return n.operands[0]->type;
}

template <typename T>
void evalSoftmax(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                 EvalContext &) {
  int64_t axis =
      llvm::cantFail(normaliseAxis(n, n.intAttr("axis"), out.rank()));
  AxisView v(out.shape(), axis);
  const T *x = in[0]->data<T>();
  T *y = out.data<T>();
  bool log = n.op == Op::LogSoftmax;
  for (int64_t o = 0; o < v.outer; ++o)
    for (int64_t in = 0; in < v.inner; ++in) {
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t i = 0; i < v.len; ++i)
        mx = std::max(mx, x[v.at(o, i, in)]);
      T sum = 0;
      for (int64_t i = 0; i < v.len; ++i)
        sum += std::exp(x[v.at(o, i, in)] - mx);
      for (int64_t i = 0; i < v.len; ++i) {
        T z = x[v.at(o, i, in)] - mx;
        y[v.at(o, i, in)] = log ? z - std::log(sum) : std::exp(z) / sum;
      }
    }
}

// batch_norm {mode, eps, momentum}: x [N, C, ...], gamma, beta, mean, var [C]
llvm::Expected<TensorType> shapeBatchNorm(const Node &n) {
  const TensorType &x = n.operands[0]->type;
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  if (x.rank() < 2)
    return makeError("batch_norm needs x of rank 2 or more, got " + x.str());
  TensorType c{x.dtype, {x.shape[1]}};
  for (unsigned i = 1; i < 5; ++i)
    if (n.operands[i]->type != c)
      return makeError("batch_norm of " + x.str() +
                       " needs gamma, beta and "
                       "running statistics of type " +
                       c.str() + ", got " + n.operands[i]->type.str());
  if (auto e = checkMode(n))
    return std::move(e);
  auto eps = n.getFloat("eps");
  auto momentum = n.getFloat("momentum");
  if (!eps || !momentum)
    return llvm::joinErrors(eps.takeError(), momentum.takeError());
  if (!(*eps > 0))
    return makeError("batch_norm needs eps > 0");
  return x;
}

template <typename T>
void evalBatchNorm(const Node &n, llvm::ArrayRef<const Tensor *> in,
                   Tensor &out, EvalContext &) {
  AxisView v(out.shape(), 1);
  const T *x = in[0]->data<T>(), *gamma = in[1]->data<T>(),
          *beta = in[2]->data<T>();
  T *y = out.data<T>();
  bool train = n.stringAttr("mode") == "train";
  T eps = T(n.floatAttr("eps"));
  T count = T(v.outer * v.inner);
  for (int64_t c = 0; c < v.len; ++c) {
    T mean = in[3]->data<T>()[c], var = in[4]->data<T>()[c];
    if (train) {
      mean = var = 0;
      for (int64_t o = 0; o < v.outer; ++o)
        for (int64_t i = 0; i < v.inner; ++i)
          mean += x[v.at(o, c, i)];
      mean /= count;
      for (int64_t o = 0; o < v.outer; ++o)
        for (int64_t i = 0; i < v.inner; ++i) {
          T d = x[v.at(o, c, i)] - mean;
          var += d * d;
        }
      var /= count;
    }
    T scale = gamma[c] / std::sqrt(var + eps);
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.inner; ++i)
        y[v.at(o, c, i)] = (x[v.at(o, c, i)] - mean) * scale + beta[c];
  }
}

// layer_norm {eps}: x [..., D], gamma, beta [D]
llvm::Expected<TensorType> shapeLayerNorm(const Node &n) {
  const TensorType &x = n.operands[0]->type;
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  if (x.rank() < 1)
    return makeError("layer_norm needs x of rank 1 or more");
  TensorType d{x.dtype, {x.shape.back()}};
  for (unsigned i = 1; i < 3; ++i)
    if (n.operands[i]->type != d)
      return makeError("layer_norm of " + x.str() +
                       " needs gamma and beta of "
                       "type " +
                       d.str() + ", got " + n.operands[i]->type.str());
  auto eps = n.getFloat("eps");
  if (!eps)
    return eps.takeError();
  if (!(*eps > 0))
    return makeError("layer_norm needs eps > 0");
  return x;
}

template <typename T>
void evalLayerNorm(const Node &n, llvm::ArrayRef<const Tensor *> in,
                   Tensor &out, EvalContext &) {
  int64_t d = out.shape().back(), rows = out.numel() / d;
  const T *x = in[0]->data<T>(), *gamma = in[1]->data<T>(),
          *beta = in[2]->data<T>();
  T *y = out.data<T>();
  T eps = T(n.floatAttr("eps"));
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * d;
    T mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i)
      mean += xr[i];
    mean /= T(d);
    for (int64_t i = 0; i < d; ++i)
      var += (xr[i] - mean) * (xr[i] - mean);
    var /= T(d);
    T inv = T(1) / std::sqrt(var + eps);
    for (int64_t i = 0; i < d; ++i)
      y[r * d + i] = (xr[i] - mean) * inv * gamma[i] + beta[i];
  }
}

// dropout {mode, p, seed}: in training, zero each element with probability p
// and scale the rest by 1/(1-p); in eval, the identity.
llvm::Expected<TensorType> shapeDropout(const Node &n) {
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  if (auto e = checkMode(n))
    return std::move(e);
  auto p = n.getFloat("p");
  if (!p)
    return p.takeError();
  if (!(*p >= 0 && *p < 1))
    return makeError("dropout needs 0 <= p < 1, got " + std::to_string(*p));
  if (auto s = n.getInt("seed"); !s)
    return s.takeError();
  return n.operands[0]->type;
}

template <typename T>
void evalDropout(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                 EvalContext &ctx) {
  const T *x = in[0]->data<T>();
  T *y = out.data<T>();
  double p = n.floatAttr("p");
  if (n.stringAttr("mode") == "eval" || p == 0) {
    std::copy_n(x, out.numel(), y);
    return;
  }
  uint64_t key = dropoutKey(ctx.seed, n.intAttr("seed"), ctx.step);
  scalar::Host<T> s;
  for (int64_t i = 0; i < out.numel(); ++i)
    y[i] = scalar::dropout(s, x[i], key, uint64_t(i), p);
}

// embedding: ids i32 [...], table [V, D] -> [..., D]
llvm::Expected<TensorType> shapeEmbedding(const Node &n) {
  const TensorType &ids = n.operands[0]->type, &table = n.operands[1]->type;
  if (ids.dtype != DType::I32 || table.rank() != 2 || !isFloat(table.dtype))
    return makeError("embedding needs i32 ids and a float table [V, D], got " +
                     ids.str() + " and " + table.str());
  TensorType t{table.dtype, ids.shape};
  t.shape.push_back(table.shape[1]);
  return t;
}

template <typename T>
void evalEmbedding(const Node &n, llvm::ArrayRef<const Tensor *> in,
                   Tensor &out, EvalContext &ctx) {
  int64_t v = in[1]->shape()[0], d = in[1]->shape()[1];
  const int32_t *ids = in[0]->data<int32_t>();
  for (int64_t i = 0; i < in[0]->numel(); ++i) {
    if (ids[i] < 0 || ids[i] >= v)
      return ctx.fail("embedding id " + llvm::Twine(ids[i]) +
                      " is out of range for a table of " + llvm::Twine(v) +
                      " rows");
    std::copy_n(in[1]->data<T>() + ids[i] * d, d, out.data<T>() + i * d);
  }
}

// one_hot {classes}: ids i32 [...] -> f32 [..., classes]
llvm::Expected<TensorType> shapeOneHot(const Node &n) {
  const TensorType &ids = n.operands[0]->type;
  if (ids.dtype != DType::I32)
    return makeError("one_hot needs i32 ids, got " + ids.str());
  auto classes = n.getInt("classes");
  if (!classes)
    return classes.takeError();
  if (*classes < 1)
    return makeError("one_hot needs classes >= 1");
  TensorType t{DType::F32, ids.shape};
  t.shape.push_back(*classes);
  return t;
}

template <typename T>
void evalOneHot(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                EvalContext &ctx) {
  int64_t c = n.intAttr("classes");
  const int32_t *ids = in[0]->data<int32_t>();
  T *y = out.data<T>();
  for (int64_t i = 0; i < in[0]->numel(); ++i) {
    if (ids[i] < 0 || ids[i] >= c)
      return ctx.fail("one_hot id " + llvm::Twine(ids[i]) +
                      " is out of range for " + llvm::Twine(c) + " classes");
    y[i * c + ids[i]] = T(1);
  }
}

//===-- Gradient rules ---------------------------------------------------===//
using Operands = llvm::MutableArrayRef<Node *>;

void gradSoftmax(GradBuilder &b, Node &n, Node *g, Operands d) {
  int64_t axis =
      llvm::cantFail(normaliseAxis(n, n.intAttr("axis"), n.type.rank()));
  const Shape &shape = n.type.shape;
  if (n.op == Op::Softmax) {
    // y * (g - sum(g * y))
    Node *dot = b.broadcastTo(b.sum(b.mul(g, &n), {axis}, true), shape);
    d[0] = b.mul(&n, b.sub(g, dot));
  } else {
    // g - softmax * sum(g), with softmax = exp(log_softmax)
    Node *total = b.broadcastTo(b.sum(g, {axis}, true), shape);
    d[0] = b.sub(g, b.mul(b.op(Op::Exp, {&n}), total));
  }
}

/// The gradient of normalising x over `axes` with scale gamma: the standard
/// batch/layer norm backward, written with means so it is one formula:
///   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
/// `stats` false: mean and rstd are constants (batch norm in eval mode).
void gradNormalize(GradBuilder &b, Node *x, Node *g, Node *gammaB, Node *mean,
                   Node *rstd, llvm::ArrayRef<int64_t> axes, bool stats,
                   Node *&dx, Node *&xhat) {
  const Shape &shape = x->type.shape;
  Node *rstdB = b.broadcastTo(rstd, shape);
  xhat = b.mul(b.sub(x, b.broadcastTo(mean, shape)), rstdB);
  Node *dxhat = b.mul(g, gammaB);
  if (!stats) {
    dx = b.mul(dxhat, rstdB);
    return;
  }
  Node *m1 = b.broadcastTo(b.mean(dxhat, axes, true), shape);
  Node *m2 = b.broadcastTo(b.mean(b.mul(dxhat, xhat), axes, true), shape);
  dx = b.mul(rstdB, b.sub(b.sub(dxhat, m1), b.mul(xhat, m2)));
}

/// 1 / sqrt(var + eps)
Node *inverseStd(GradBuilder &b, Node *var, double eps) {
  Node *root = b.op(Op::Sqrt, {b.add(var, b.constant(eps, var->type.shape))});
  return b.div(b.constant(1, var->type.shape), root);
}

void gradBatchNorm(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *x = n.operands[0];
  const Shape &shape = x->type.shape;
  llvm::SmallVector<int64_t, 4> axes;
  Shape channel(shape.size(), 1);
  channel[1] = shape[1];
  for (int64_t i = 0; i < int64_t(shape.size()); ++i)
    if (i != 1)
      axes.push_back(i);
  double eps = n.floatAttr("eps");
  bool train = n.stringAttr("mode") == "train";
  Node *mean, *rstd;
  if (train) {
    mean = b.mean(x, axes, true);
    Node *xc = b.sub(x, b.broadcastTo(mean, shape));
    rstd = inverseStd(b, b.mean(b.mul(xc, xc), axes, true), eps);
  } else {
    mean = b.reshape(n.operands[3], channel);
    rstd = b.reshape(inverseStd(b, n.operands[4], eps), channel);
  }
  Node *gammaB = b.broadcastTo(b.reshape(n.operands[1], channel), shape);
  Node *xhat;
  gradNormalize(b, x, g, gammaB, mean, rstd, axes, train, d[0], xhat);
  d[1] = b.sum(b.mul(g, xhat), axes, false);
  d[2] = b.sum(g, axes, false);
  if (train)
    return; // the running statistics do not affect the output
  // In eval mode y = (x - m) * rstd(v) * gamma + beta:
  //   dm = -sum(g gamma rstd), dv = sum(g gamma (x - m)) * -rstd^3 / 2.
  Node *dxhat = b.mul(g, gammaB);
  Node *rstdC = b.reshape(rstd, {shape[1]});
  d[3] = b.neg(b.mul(b.sum(dxhat, axes, false), rstdC));
  Node *xc = b.sub(x, b.broadcastTo(mean, shape));
  Node *cube = b.mul(rstdC, b.mul(rstdC, rstdC));
  d[4] = b.mul(b.sum(b.mul(dxhat, xc), axes, false), b.scale(cube, -0.5));
}

void gradLayerNorm(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *x = n.operands[0];
  const Shape &shape = x->type.shape;
  int64_t last = shape.size() - 1;
  Node *mean = b.mean(x, {last}, true);
  Node *xc = b.sub(x, b.broadcastTo(mean, shape));
  Node *rstd =
      inverseStd(b, b.mean(b.mul(xc, xc), {last}, true), n.floatAttr("eps"));
  Node *xhat;
  gradNormalize(b, x, g, b.broadcastTo(n.operands[1], shape), mean, rstd,
                {last}, true, d[0], xhat);
  llvm::SmallVector<int64_t, 4> rows;
  for (int64_t i = 0; i < last; ++i)
    rows.push_back(i);
  d[1] = b.sum(b.mul(g, xhat), rows, false);
  d[2] = b.sum(g, rows, false);
}

// dropout: the same mask (same seed and step) applied to the gradient.
void gradDropout(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = n.stringAttr("mode") == "eval" ? g : b.op(Op::Dropout, {g}, n.attrs);
}

// embedding: each row of the table collects the gradients of its ids,
// one_hot(ids)^T @ g.
void gradEmbedding(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *ids = n.operands[0];
  int64_t v = n.operands[1]->type.shape[0], dim = n.operands[1]->type.shape[1];
  int64_t m = *numElements(ids->type.shape);
  Node *oh = b.reshape(b.op(Op::OneHot, {ids}, {{"classes", v}}), {m, v});
  d[1] = b.op(Op::MatMul, {b.transposeLast2(oh), b.reshape(g, {m, dim})});
}

} // namespace

void kiln::registerNetworkRules(RuleTable &t) {
  t[size_t(Op::Softmax)] = {shapeSoftmax, KILN_EVAL(evalSoftmax)};
  t[size_t(Op::LogSoftmax)] = {shapeSoftmax, KILN_EVAL(evalSoftmax)};
  t[size_t(Op::BatchNorm)] = {shapeBatchNorm, KILN_EVAL(evalBatchNorm)};
  t[size_t(Op::LayerNorm)] = {shapeLayerNorm, KILN_EVAL(evalLayerNorm)};
  t[size_t(Op::Dropout)] = {shapeDropout, KILN_EVAL(evalDropout)};
  t[size_t(Op::Embedding)] = {shapeEmbedding, KILN_EVAL(evalEmbedding)};
  t[size_t(Op::OneHot)] = {shapeOneHot, KILN_EVAL(evalOneHot), noGradient};
  t[size_t(Op::Softmax)].grad = gradSoftmax;
  t[size_t(Op::LogSoftmax)].grad = gradSoftmax;
  t[size_t(Op::BatchNorm)].grad = gradBatchNorm;
  t[size_t(Op::LayerNorm)].grad = gradLayerNorm;
  t[size_t(Op::Dropout)].grad = gradDropout;
  t[size_t(Op::Embedding)].grad = gradEmbedding;
}

// splitmix64 is counter-based, so element i's draw depends only on (run
// seed, op seed, step, i) and any order of evaluation agrees.
uint64_t kiln::splitmix64(uint64_t z) {
  scalar::Host<double> s;
  return scalar::splitmix64(s, z);
}

uint64_t kiln::dropoutKey(uint64_t runSeed, int64_t opSeed, uint64_t step) {
  return splitmix64(splitmix64(runSeed ^ splitmix64(uint64_t(opSeed))) ^ step);
}
