//===- Loss.cpp - Losses: scalar means over the batch ---------------------===//
//
// cross_entropy takes logits and integer labels, with PyTorch's label
// smoothing: (1 - e) * nll + e * mean over classes of -log p. Logits go
// through a shifted log-sum-exp and binary_cross_entropy_with_logits through
// max(z, 0) - z t + log1p(e^-|z|), so extreme logits stay finite.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include <cmath>

using namespace kiln;

namespace {

// cross_entropy {label_smoothing}: logits [N, C], labels i32 [N] -> scalar
llvm::Expected<TensorType> shapeCrossEntropy(const Node &n) {
  const TensorType &z = n.operands[0]->type, &y = n.operands[1]->type;
  if (z.rank() != 2 || !isFloat(z.dtype) || y.dtype != DType::I32 ||
      y.shape != Shape{z.shape[0]})
    return makeError("cross_entropy needs logits [N, C] and i32 labels [N], "
                     "got " +
                     z.str() + " and " + y.str());
  auto ls = n.getFloat("label_smoothing");
  if (!ls)
    return ls.takeError();
  if (!(*ls >= 0 && *ls <= 1))
    return makeError("label_smoothing must be in [0, 1]");
  return TensorType{z.dtype, {}};
}

template <typename T>
void evalCrossEntropy(const Node &n, llvm::ArrayRef<const Tensor *> in,
                      Tensor &out, EvalContext &ctx) {
  int64_t rows = in[0]->shape()[0], c = in[0]->shape()[1];
  const T *z = in[0]->data<T>();
  const int32_t *y = in[1]->data<int32_t>();
  T eps = T(n.floatAttr("label_smoothing"));
  T total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const T *zr = z + r * c;
    if (y[r] < 0 || y[r] >= c)
      return ctx.fail("label " + llvm::Twine(y[r]) + " is out of range for " +
                      llvm::Twine(c) + " classes");
    T mx = *std::max_element(zr, zr + c), sum = 0, all = 0;
    for (int64_t i = 0; i < c; ++i) {
      sum += std::exp(zr[i] - mx);
      all += zr[i];
    }
    T lse = mx + std::log(sum);
    total += (T(1) - eps) * (lse - zr[y[r]]) + eps * (lse - all / T(c));
  }
  out.data<T>()[0] = total / T(rows);
}

llvm::Expected<TensorType> shapePairLoss(const Node &n) {
  const TensorType &a = n.operands[0]->type, &b = n.operands[1]->type;
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  if (a != b)
    return makeError("'" + n.info().mnemonic +
                     "' needs two operands of one type, got " + a.str() +
                     " and " + b.str());
  return TensorType{a.dtype, {}};
}

// binary_cross_entropy_with_logits: mean of max(z,0) - z t + log1p(e^-|z|)
template <typename T>
void evalBCEWithLogits(const Node &, llvm::ArrayRef<const Tensor *> in,
                       Tensor &out, EvalContext &) {
  const T *z = in[0]->data<T>(), *t = in[1]->data<T>();
  T total = 0;
  for (int64_t i = 0; i < in[0]->numel(); ++i)
    total += std::max(z[i], T(0)) - z[i] * t[i] +
             std::log1p(std::exp(-std::abs(z[i])));
  out.data<T>()[0] = total / T(in[0]->numel());
}

// mse: mean of (a - b)^2
template <typename T>
void evalMSE(const Node &, llvm::ArrayRef<const Tensor *> in, Tensor &out,
             EvalContext &) {
  const T *a = in[0]->data<T>(), *b = in[1]->data<T>();
  T total = 0;
  for (int64_t i = 0; i < in[0]->numel(); ++i)
    total += (a[i] - b[i]) * (a[i] - b[i]);
  out.data<T>()[0] = total / T(in[0]->numel());
}

//===-- Gradient rules ---------------------------------------------------===//
using Operands = llvm::MutableArrayRef<Node *>;

/// g (a scalar) / count, spread over `shape`.
Node *meanGrad(GradBuilder &b, Node *g, llvm::ArrayRef<int64_t> shape) {
  double count = double(*numElements(shape));
  return b.broadcastTo(b.scale(g, 1 / count), shape);
}

// cross_entropy: (softmax(z) - target) * g / N, where the target puts
// 1 - e on the label and e / C on every class. Finite for any logits.
void gradCrossEntropy(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *z = n.operands[0];
  const Shape &shape = z->type.shape;
  int64_t c = shape[1];
  double eps = n.floatAttr("label_smoothing");
  Node *p = b.op(Op::Softmax, {z}, {{"axis", int64_t(-1)}});
  Node *target = b.op(Op::OneHot, {n.operands[1]}, {{"classes", c}});
  if (eps != 0)
    target =
        b.add(b.scale(target, 1 - eps), b.constant(eps / double(c), shape));
  Node *perRow = b.broadcastTo(b.scale(g, 1 / double(shape[0])), shape);
  d[0] = b.mul(b.sub(p, target), perRow);
}

// binary_cross_entropy_with_logits: (sigmoid(z) - t) and -z, times g / n.
void gradBCEWithLogits(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *z = n.operands[0], *t = n.operands[1];
  Node *scale = meanGrad(b, g, z->type.shape);
  d[0] = b.mul(b.sub(b.op(Op::Sigmoid, {z}), t), scale);
  d[1] = b.mul(b.neg(z), scale);
}

// mse: 2 (a - b) g / n, and its negation.
void gradMSE(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *diff = b.sub(n.operands[0], n.operands[1]);
  d[0] = b.mul(b.scale(diff, 2), meanGrad(b, g, diff->type.shape));
  d[1] = b.neg(d[0]);
}

} // namespace

void kiln::registerLossRules(RuleTable &t) {
  t[size_t(Op::CrossEntropy)] = {shapeCrossEntropy, KILN_EVAL(evalCrossEntropy),
                                 gradCrossEntropy};
  t[size_t(Op::BCEWithLogits)] = {shapePairLoss, KILN_EVAL(evalBCEWithLogits),
                                  gradBCEWithLogits};
  t[size_t(Op::MSE)] = {shapePairLoss, KILN_EVAL(evalMSE), gradMSE};
}
