//===- Reduce.cpp - sum, mean, max over axes ------------------------------===//
//
// Reductions take {axes} (empty: every axis, giving a scalar) and {keepdims}
// (0 or 1: reduced axes stay as size 1). max propagates NaN as torch.amax.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include <cmath>
#include <limits>

using namespace kiln;

llvm::Expected<Shape> kiln::reducedAxes(const Node &n) {
  auto axes = n.getInts("axes");
  if (!axes)
    return axes.takeError();
  int64_t rank = n.operands[0]->type.rank();
  Shape out;
  if (axes->empty()) {
    for (int64_t i = 0; i < rank; ++i)
      out.push_back(i);
    return out;
  }
  for (int64_t a : *axes) {
    auto ax = normaliseAxis(n, a, rank);
    if (!ax)
      return ax.takeError();
    if (llvm::is_contained(out, *ax))
      return makeError("axis " + llvm::Twine(a) + " is repeated in '" +
                       n.info().mnemonic + "'");
    out.push_back(*ax);
  }
  llvm::sort(out);
  return out;
}

namespace {

llvm::Expected<TensorType> shapeReduce(const Node &n) {
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  auto axes = reducedAxes(n);
  if (!axes)
    return axes.takeError();
  auto keep = n.getInt("keepdims");
  if (!keep)
    return keep.takeError();
  if (*keep != 0 && *keep != 1)
    return makeError("keepdims must be 0 or 1");
  TensorType t{n.operands[0]->type.dtype, {}};
  for (int64_t i = 0; i < n.operands[0]->type.rank(); ++i) {
    if (!llvm::is_contained(*axes, i))
      t.shape.push_back(n.operands[0]->type.shape[i]);
    else if (*keep)
      t.shape.push_back(1);
  }
  return t;
}

/// For each input element, the offset of the output element it reduces into.
std::vector<int64_t> reduceTargets(const Node &n) {
  llvm::ArrayRef<int64_t> in = n.operands[0]->type.shape;
  Shape axes = llvm::cantFail(reducedAxes(n));
  Shape kept;
  for (int64_t i = 0; i < int64_t(in.size()); ++i)
    kept.push_back(llvm::is_contained(axes, i) ? 1 : in[i]);
  Shape strides = stridesOf(kept);
  for (int64_t a : axes)
    strides[a] = 0;
  return stridedOffsets(in, strides);
}

template <typename T>
void evalReduce(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                EvalContext &) {
  std::vector<int64_t> target = reduceTargets(n);
  const T *x = in[0]->data<T>();
  T *y = out.data<T>();
  bool isMax = n.op == Op::Max;
  std::fill_n(y, out.numel(),
              isMax ? -std::numeric_limits<T>::infinity() : T(0));
  for (size_t i = 0; i < target.size(); ++i) {
    T &acc = y[target[i]];
    if (!isMax)
      acc += x[i];
    else if (std::isnan(x[i]) || x[i] > acc)
      acc = std::isnan(acc) ? acc : x[i];
  }
  if (n.op == Op::Mean) {
    T count = T(in[0]->numel() / out.numel());
    for (int64_t i = 0; i < out.numel(); ++i)
      y[i] /= count;
  }
}

/// The reduced value g, reshaped with kept axes and broadcast to x's shape.
Node *spread(GradBuilder &b, Node &n, Node *g) {
  Shape axes = llvm::cantFail(reducedAxes(n));
  Shape kept(n.operands[0]->type.shape);
  for (int64_t a : axes)
    kept[a] = 1;
  return b.broadcastTo(b.reshape(g, kept), n.operands[0]->type.shape);
}

void gradSum(GradBuilder &b, Node &n, Node *g,
             llvm::MutableArrayRef<Node *> d) {
  d[0] = spread(b, n, g);
}
void gradMean(GradBuilder &b, Node &n, Node *g,
              llvm::MutableArrayRef<Node *> d) {
  double count = double(*numElements(n.operands[0]->type.shape)) /
                 double(*numElements(n.type.shape));
  d[0] = b.scale(spread(b, n, g), 1 / count);
}
// max: the gradient is shared equally by the elements equal to the maximum,
// as torch.amax.
void gradMax(GradBuilder &b, Node &n, Node *g,
             llvm::MutableArrayRef<Node *> d) {
  Node *x = n.operands[0];
  Node *mask = b.op(Op::Equal, {x, spread(b, n, &n)});
  Shape axes = llvm::cantFail(reducedAxes(n));
  Node *ties = b.broadcastTo(b.sum(mask, axes, true), x->type.shape);
  d[0] = b.div(b.mul(spread(b, n, g), mask), ties);
}

} // namespace

void kiln::registerReduceRules(RuleTable &t) {
  for (Op op : {Op::Sum, Op::Mean, Op::Max})
    t[size_t(op)] = {shapeReduce, KILN_EVAL(evalReduce)};
  t[size_t(Op::Sum)].grad = gradSum;
  t[size_t(Op::Mean)].grad = gradMean;
  t[size_t(Op::Max)].grad = gradMax;
}
