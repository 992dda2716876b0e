//===- Fused.cpp - Fused kernels: a node whose body is a graph ------------===//
//
// `fused {kind}` computes its body: a graph whose `arg {index}` leaves read
// the node's operands and whose `return` is the node's value. The shape rule
// verifies the body and the kind's legality; evaluation runs the body's
// rules in order, so the interpreter's result of a fused node is exactly that
// of the unfused ops; the gradient rule differentiates the body, inlined.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include "ir/Verifier.h"
#include "ir/ops/Scalar.h"
#include "llvm/ADT/DenseMap.h"

using namespace kiln;

bool kiln::fusesElementwise(Op op) {
  switch (op) {
  case Op::Arg:
  case Op::Constant:
  case Op::Broadcast:
  case Op::Transpose:
  case Op::Slice:
  case Op::Reshape:
#define X(E, F, A) case Op::E:
    KILN_FOR_EACH_SCALAR_OP(X)
#undef X
    return true;
  default:
    return false;
  }
}

namespace {

// arg {index}: the body's view of operand `index` of its fused node.
llvm::Expected<TensorType> shapeArg(const Node &n) {
  auto index = n.getInt("index");
  if (!index)
    return index.takeError();
  if (*index < 0)
    return makeError("'arg' index must be at least 0, got " +
                     llvm::Twine(*index));
  return n.type;
}

template <typename T>
void evalArg(const Node &n, llvm::ArrayRef<const Tensor *>, Tensor &out,
             EvalContext &ctx) {
  out = *ctx.args[n.intAttr("index")];
}

// fused {kind}: one arg per operand, of its type; the body returns the value.
llvm::Expected<TensorType> shapeFused(const Node &n) {
  if (!n.body)
    return makeError("'fused' needs a body");
  auto kind = n.getString("kind");
  if (!kind)
    return kind.takeError();
  if (*kind != "elementwise")
    return makeError("unknown fused kind '" + *kind + "' (known: elementwise)");
  const Graph &b = *n.body;
  if (auto e = verifyGraph(b, /*isBody=*/true))
    return makeError("in the body of 'fused': " + llvm::toString(std::move(e)));
  if (!b.output)
    return makeError("the body of 'fused' has no return");
  if (b.objective || !b.updates.empty() || !b.gradients.empty())
    return makeError("the body of 'fused' may only return a value");
  std::vector<const Node *> args(n.operands.size(), nullptr);
  for (auto &np : b.nodes) {
    const Node &x = *np;
    if (!fusesElementwise(x.op))
      return makeError("'" + x.info().mnemonic +
                       "' cannot be part of an elementwise fused kernel");
    if (x.type.dtype != DType::F32)
      return makeError("an elementwise fused kernel computes f32 values, "
                       "not " +
                       x.type.str());
    if (x.op != Op::Arg)
      continue;
    int64_t i = x.intAttr("index");
    if (i >= int64_t(args.size()))
      return makeError("'arg' index " + llvm::Twine(i) +
                       " is out of range for " + llvm::Twine(args.size()) +
                       " operands");
    if (args[i])
      return makeError("operand " + llvm::Twine(i) + " has two args");
    if (x.type != n.operands[i]->type)
      return makeError("arg " + llvm::Twine(i) + " has type " + x.type.str() +
                       " but operand " + llvm::Twine(i) + " is " +
                       n.operands[i]->type.str());
    args[i] = &x;
  }
  for (size_t i = 0; i < args.size(); ++i)
    if (!args[i])
      return makeError("operand " + llvm::Twine(i) + " has no arg in the body");
  return b.output->type;
}

template <typename T>
void evalFused(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
               EvalContext &ctx) {
  EvalContext inner;
  inner.leaves = ctx.leaves;
  inner.seed = ctx.seed;
  inner.step = ctx.step;
  inner.args = in;
  llvm::DenseMap<const Node *, Tensor> values;
  DType precision = std::is_same_v<T, double> ? DType::F64 : DType::F32;
  for (auto &np : n.body->nodes) {
    const Node &x = *np;
    llvm::SmallVector<const Tensor *, 4> ins;
    for (const Node *o : x.operands)
      ins.push_back(&values[o]);
    Tensor v(isFloat(x.type.dtype) ? precision : x.type.dtype, x.type.shape);
    if constexpr (std::is_same_v<T, double>)
      opRules(x.op).evalF64(x, ins, v, inner);
    else
      opRules(x.op).evalF32(x, ins, v, inner);
    values[&x] = std::move(v);
  }
  if (!inner.error.empty())
    ctx.fail(inner.error);
  out = std::move(values[n.body->output]);
}

// The gradient of the body, inlined: its ops are rebuilt on the operands and
// differentiated in reverse with their own rules.
void gradFused(GradBuilder &b, Node &n, Node *g,
               llvm::MutableArrayRef<Node *> d) {
  llvm::DenseMap<const Node *, Node *> clone, grad;
  for (auto &np : n.body->nodes) {
    const Node &x = *np;
    if (x.op == Op::Arg) {
      clone[&x] = n.operands[x.intAttr("index")];
    } else if (x.op == Op::Constant) {
      clone[&x] = b.constant(x.floatAttr("value"), x.type.shape);
    } else {
      llvm::SmallVector<Node *, 4> ops;
      for (const Node *o : x.operands)
        ops.push_back(clone[o]);
      clone[&x] = b.op(x.op, ops, x.attrs);
    }
  }
  grad[n.body->output] = g;
  for (auto it = n.body->nodes.rbegin(); it != n.body->nodes.rend(); ++it) {
    const Node &x = **it;
    Node *gx = grad.lookup(&x);
    if (!gx || x.info().flags & Leaf)
      continue;
    llvm::SmallVector<Node *, 4> ds(x.operands.size(), nullptr);
    opRules(x.op).grad(b, *clone[&x], gx, ds);
    for (size_t i = 0; i < x.operands.size(); ++i)
      if (ds[i]) {
        Node *&acc = grad[x.operands[i]];
        acc = acc ? b.add(acc, ds[i]) : ds[i];
      }
  }
  for (auto &np : n.body->nodes)
    if (np->op == Op::Arg)
      d[np->intAttr("index")] = grad.lookup(np.get());
}

} // namespace

void kiln::registerFusedRules(RuleTable &t) {
  t[size_t(Op::Arg)] = {shapeArg, KILN_EVAL(evalArg), noGradient};
  t[size_t(Op::Fused)] = {shapeFused, KILN_EVAL(evalFused), gradFused};
}
