//===- Linalg.cpp - Matrix product
//-----------------------------------------===//
//
// matmul: [..., M, K] @ [..., K, N] -> [..., M, N]. The batch dimensions of
// the two operands are equal, or the right operand is a plain matrix shared
// by every batch (`x @ w` on a sequence). The interpreter uses Eigen's GEMM.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include <Eigen/Core>

using namespace kiln;

namespace {

llvm::Expected<TensorType> shapeMatMul(const Node &n) {
  const TensorType &a = n.operands[0]->type, &b = n.operands[1]->type;
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  auto fail = [&](const llvm::Twine &why) {
    return makeError("cannot multiply " + a.str() + " by " + b.str() + ": " +
                     why);
  };
  if (a.dtype != b.dtype)
    return fail("the dtypes differ");
  if (a.rank() < 2 || b.rank() < 2)
    return fail("both operands need at least two dimensions");
  if (a.shape[a.rank() - 1] != b.shape[b.rank() - 2])
    return fail("the inner dimensions differ");
  if (b.rank() != 2 && llvm::ArrayRef<int64_t>(a.shape).drop_back(2) !=
                           llvm::ArrayRef<int64_t>(b.shape).drop_back(2))
    return fail("the batch dimensions differ");
  TensorType t{a.dtype, a.shape};
  t.shape.back() = b.shape.back();
  return t;
}

template <typename T>
using RowMajor =
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename T>
void evalMatMul(const Node &, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                EvalContext &) {
  llvm::ArrayRef<int64_t> as = in[0]->shape(), bs = in[1]->shape();
  int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  int64_t batches = in[0]->numel() / (m * k);
  bool sharedB = bs.size() == 2;
  for (int64_t i = 0; i < batches; ++i) {
    Eigen::Map<const RowMajor<T>> a(in[0]->data<T>() + i * m * k, m, k);
    Eigen::Map<const RowMajor<T>> b(
        in[1]->data<T>() + (sharedB ? 0 : i * k * n), k, n);
    Eigen::Map<RowMajor<T>> c(out.data<T>() + i * m * n, m, n);
    c.noalias() = a * b;
  }
}

// d(a @ b) = g @ b^T and a^T @ g; a shared right matrix sums over the batch
// (by folding the batch into the rows).
void gradMatMul(GradBuilder &b, Node &n, Node *g,
                llvm::MutableArrayRef<Node *> d) {
  Node *a = n.operands[0], *w = n.operands[1];
  d[0] = b.op(Op::MatMul, {g, b.transposeLast2(w)});
  if (w->type.rank() == 2 && a->type.rank() > 2) {
    int64_t k = a->type.shape.back(), cols = w->type.shape.back();
    int64_t rows = *numElements(a->type.shape) / k;
    Node *a2 = b.reshape(a, {rows, k}), *g2 = b.reshape(g, {rows, cols});
    d[1] = b.op(Op::MatMul, {b.transposeLast2(a2), g2});
  } else {
    d[1] = b.op(Op::MatMul, {b.transposeLast2(a), g});
  }
}

} // namespace

void kiln::registerLinalgRules(RuleTable &t) {
  t[size_t(Op::MatMul)] = {shapeMatMul, KILN_EVAL(evalMatMul), gradMatMul};
}
