//===- Grad.cpp - Building gradient rules from ordinary ops ---------------===//
//
// GradBuilder's helpers. Reshapes, broadcasts and transposes that would do
// nothing are not built, so the training graph stays readable.
//
//===----------------------------------------------------------------------===//
#include "ir/Grad.h"
#include "llvm/Support/ErrorHandling.h"

using namespace kiln;

void kiln::noGradient(GradBuilder &, Node &, Node *,
                      llvm::MutableArrayRef<Node *>) {}

Node *GradBuilder::op(Op op, llvm::ArrayRef<Node *> operands,
                      llvm::ArrayRef<Attr> attrs) {
  auto n = graph.add(op, operands, attrs, loc);
  if (!n)
    llvm::report_fatal_error(llvm::Twine("kiln: a gradient rule built an "
                                         "invalid '") +
                             opInfo(op).mnemonic +
                             "': " + llvm::toString(n.takeError()));
  return *n;
}

Node *GradBuilder::constant(double v, llvm::ArrayRef<int64_t> shape) {
  auto n = graph.add(Op::Constant, {}, {{"value", v}}, loc,
                     TensorType{DType::F32, Shape(shape)});
  return llvm::cantFail(std::move(n));
}

Node *GradBuilder::reshape(Node *a, llvm::ArrayRef<int64_t> shape) {
  if (a->type.shape == shape)
    return a;
  return op(Op::Reshape, {a},
            {{"shape", llvm::SmallVector<int64_t, 4>(shape)}});
}

Node *GradBuilder::broadcastTo(Node *a, llvm::ArrayRef<int64_t> shape) {
  if (a->type.shape == shape)
    return a;
  return op(Op::Broadcast, {a},
            {{"shape", llvm::SmallVector<int64_t, 4>(shape)}});
}

Node *GradBuilder::transpose(Node *a, llvm::ArrayRef<int64_t> perm) {
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i)
    identity &= perm[i] == int64_t(i);
  if (identity)
    return a;
  return op(Op::Transpose, {a},
            {{"perm", llvm::SmallVector<int64_t, 4>(perm)}});
}

Node *GradBuilder::transposeLast2(Node *a) {
  llvm::SmallVector<int64_t, 4> perm;
  for (int64_t i = 0; i < a->type.rank(); ++i)
    perm.push_back(i);
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  return transpose(a, perm);
}

Node *GradBuilder::sum(Node *a, llvm::ArrayRef<int64_t> axes, bool keepdims) {
  if (axes.empty())
    return a; // nothing to reduce (an empty list would mean "all")
  return op(Op::Sum, {a},
            {{"axes", llvm::SmallVector<int64_t, 4>(axes)},
             {"keepdims", int64_t(keepdims)}});
}

Node *GradBuilder::mean(Node *a, llvm::ArrayRef<int64_t> axes, bool keepdims) {
  if (axes.empty())
    return a;
  return op(Op::Mean, {a},
            {{"axes", llvm::SmallVector<int64_t, 4>(axes)},
             {"keepdims", int64_t(keepdims)}});
}

Node *GradBuilder::sumTo(Node *g, llvm::ArrayRef<int64_t> shape) {
  llvm::ArrayRef<int64_t> from = g->type.shape;
  size_t lead = from.size() - shape.size();
  llvm::SmallVector<int64_t, 4> axes;
  for (size_t i = 0; i < from.size(); ++i)
    if (i < lead || (shape[i - lead] == 1 && from[i] != 1))
      axes.push_back(i);
  return reshape(sum(g, axes, /*keepdims=*/false), shape);
}
