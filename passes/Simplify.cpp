//===- Simplify.cpp - Algebraic cleanup -----------------------------------===//
//
// Removes work that does nothing, so the training graph reads like the math:
//  1. x * 1, 1 * x, x / 1, x + 0, 0 + x, x - 0  ->  x
//  2. transpose(transpose(x)) that composes to the identity  ->  x;
//     reshape(reshape(x))  ->  one reshape; a reshape to x's own shape -> x
// Constants count through broadcasts and reshapes (a broadcast 1 is a 1).
// DCE then removes what the rewrites left unused.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "llvm/ADT/DenseMap.h"

using namespace kiln;

namespace {

/// The value of a splat constant, seen through broadcasts and reshapes.
std::optional<double> splatValue(const Node *n) {
  while (n->op == Op::Broadcast || n->op == Op::Reshape)
    n = n->operands[0];
  if (n->op == Op::Constant)
    return n->floatAttr("value");
  return std::nullopt;
}

bool is(const Node *n, double v) {
  auto s = splatValue(n);
  return s && *s == v;
}

/// What n can be replaced by, or null.
Node *simplified(Node &n) {
  Node *a = n.operands.empty() ? nullptr : n.operands[0];
  Node *b = n.operands.size() > 1 ? n.operands[1] : nullptr;
  switch (n.op) {
  case Op::Mul:
    return is(b, 1) ? a : is(a, 1) ? b : nullptr;
  case Op::Div:
    return is(b, 1) ? a : nullptr;
  case Op::Add:
    return is(b, 0) ? a : is(a, 0) ? b : nullptr;
  case Op::Sub:
    return is(b, 0) ? a : nullptr;
  case Op::Reshape:
    return a->type.shape == n.type.shape ? a : nullptr;
  case Op::Transpose: {
    if (a->op != Op::Transpose)
      return nullptr;
    auto outer = n.intsAttr("perm"), inner = a->intsAttr("perm");
    for (size_t i = 0; i < outer.size(); ++i)
      if (inner[outer[i]] != int64_t(i))
        return nullptr;
    return a->operands[0];
  }
  default:
    return nullptr;
  }
}

} // namespace

bool kiln::runSimplify(Graph &g) {
  llvm::DenseMap<Node *, Node *> replaced;
  bool changed = false;
  for (auto &np : g.nodes) {
    Node &n = *np;
    for (Node *&o : n.operands)
      if (Node *r = replaced.lookup(o))
        o = r;
    // reshape(reshape(x)) -> reshape(x)
    if (n.op == Op::Reshape && n.operands[0]->op == Op::Reshape) {
      n.operands[0] = n.operands[0]->operands[0];
      changed = true;
    }
    // The result must keep n's type: x * 1 with x of another shape (a
    // broadcast operand) is not a replacement.
    if (Node *r = simplified(n); r && r->type == n.type) {
      replaced[&n] = r;
      changed = true;
    }
  }
  for (Node **root : g.roots())
    if (Node *r = replaced.lookup(*root))
      *root = r;
  if (changed)
    runDCE(g);
  return changed;
}
