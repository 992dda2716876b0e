//===- Grad.h - Building gradient rules from ordinary ops -------*- C++ -*-===//
//
// A gradient rule turns the gradient of one forward node into gradients of
// its operands, using only ordinary ops (no special backward ops), so the
// backward graph is itself differentiable and fusable like any code. Every
// node a rule builds carries the forward node's source location.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_GRAD_H
#define KILN_IR_GRAD_H

#include "ir/Graph.h"

namespace kiln {

class GradBuilder {
public:
  GradBuilder(Graph &g, const Node &forward) : graph(g), loc(forward.loc) {}

  /// Appends a node; a rule that builds an ill-typed node is a Kiln bug.
  Node *op(Op op, llvm::ArrayRef<Node *> operands,
           llvm::ArrayRef<Attr> attrs = {});
  /// A float splat of `shape`.
  Node *constant(double v, llvm::ArrayRef<int64_t> shape);
  Node *add(Node *a, Node *b) { return op(Op::Add, {a, b}); }
  Node *sub(Node *a, Node *b) { return op(Op::Sub, {a, b}); }
  Node *mul(Node *a, Node *b) { return op(Op::Mul, {a, b}); }
  Node *div(Node *a, Node *b) { return op(Op::Div, {a, b}); }
  Node *neg(Node *a) { return op(Op::Neg, {a}); }
  /// a * v for a number v.
  Node *scale(Node *a, double v) { return mul(a, constant(v, a->type.shape)); }
  Node *reshape(Node *a, llvm::ArrayRef<int64_t> shape);
  Node *broadcastTo(Node *a, llvm::ArrayRef<int64_t> shape);
  Node *transpose(Node *a, llvm::ArrayRef<int64_t> perm);
  Node *sum(Node *a, llvm::ArrayRef<int64_t> axes, bool keepdims);
  Node *mean(Node *a, llvm::ArrayRef<int64_t> axes, bool keepdims);
  /// Sums a gradient back to the shape its operand had before NumPy
  /// broadcasting.
  Node *sumTo(Node *g, llvm::ArrayRef<int64_t> shape);
  /// Swaps the last two axes.
  Node *transposeLast2(Node *a);

  Graph &graph;
  Location loc;
};

/// Sets grads[i] to the gradient of operand i (null: none), given the
/// gradient `g` of node n (same type as n).
using GradFn = void (*)(GradBuilder &b, Node &n, Node *g,
                        llvm::MutableArrayRef<Node *> grads);

/// The rule of ops whose operands get no gradient: leaves, integer-valued
/// ops, masks and stop_gradient.
void noGradient(GradBuilder &, Node &, Node *, llvm::MutableArrayRef<Node *>);

} // namespace kiln

#endif
