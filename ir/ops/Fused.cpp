//===- Fused.cpp - Fused kernels: a node whose body is a graph ------------===//
//
// `fused {kind}` computes its body: a graph whose `arg {index}` leaves read
// the node's operands and whose `return %a, %b, ...` gives the node's
// results: the node's value is the first, and `result {index}` nodes read
// the others. The shape rule verifies the body and the kind's legality:
//   elementwise  one loop over the results' shape;
//   gemm         one rank-2 matmul of args and an elementwise epilogue that
//                reads the product at the element it computes;
//   conv         the same with one conv2d of two args as the product (an
//                im2col and a GEMM per image);
//   reduce       one sum, mean or max of an elementwise prologue, and an
//                elementwise epilogue that reads it at the element it
//                computes;
//   rows         a loop over the rows of one [R, C] domain: softmaxes along
//                rows, one_hot, cross_entropy and elementwise ops, each row
//                computed from that row alone.
// Evaluation runs the body's rules in order, so the interpreter's result of
// a fused node is exactly that of the unfused ops. Autodiff differentiates
// the body inlined (inlineFused).
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include "ir/Verifier.h"
#include "ir/ops/Scalar.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

using namespace kiln;

bool kiln::isScalarOp(Op op) {
  switch (op) {
#define X(E, F, A) case Op::E:
    KILN_FOR_EACH_SCALAR_OP(X)
#undef X
    return true;
  default:
    return false;
  }
}

bool kiln::fusesElementwise(Op op) {
  switch (op) {
  case Op::Arg:
  case Op::Constant:
  case Op::Broadcast:
  case Op::Transpose:
  case Op::Slice:
  case Op::Reshape:
    return true;
  default:
    return isScalarOp(op);
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

/// The op a kernel of `kind` computes besides elementwise ones, if any.
bool isProducerOf(llvm::StringRef kind, Op op) {
  if (kind == "gemm")
    return op == Op::MatMul;
  if (kind == "conv")
    return op == Op::Conv2d;
  if (kind == "reduce")
    return op == Op::Sum || op == Op::Mean || op == Op::Max;
  return false;
}

/// The name of what a gemm, conv or reduce kernel computes before its
/// epilogue.
llvm::StringRef producerName(llvm::StringRef kind) {
  return kind == "gemm" ? "matmul" : kind == "conv" ? "conv2d" : "reduction";
}

/// Why the body of a gemm, conv or reduce kernel is not one producer (a
/// rank-2 matmul of args or their transposes; a conv2d of args; a reduction
/// of any body value) and
/// an elementwise epilogue that reads it only at the element it computes,
/// or "": a GEMM's epilogue runs on one block of C before the others exist,
/// a reduction's on each output as it is finished.
std::string producerBodyError(const Graph &b, llvm::StringRef kind) {
  const Node *producer = nullptr;
  llvm::DenseSet<const Node *> fromProduct;
  for (auto &np : b.nodes) {
    const Node &x = *np;
    if (isProducerOf(kind, x.op)) {
      if (producer)
        return ("a " + kind + " kernel computes one " + producerName(kind))
            .str();
      producer = &x;
      if (kind == "gemm") {
        if (x.type.rank() != 2)
          return "the matmul of a gemm kernel must be of rank 2, not " +
                 x.type.str();
        for (const Node *o : x.operands) {
          const Node *a = o->op == Op::Transpose ? o->operands[0] : o;
          if (a->op != Op::Arg || a->type.rank() != 2)
            return "the matmul of a gemm kernel reads only rank-2 args or "
                   "their transposes";
        }
      }
      if (kind == "conv")
        for (const Node *o : x.operands)
          if (o->op != Op::Arg)
            return "the conv2d of a conv kernel reads only args, not '" +
                   o->info().mnemonic.str() + "'";
      fromProduct.insert(&x);
      continue;
    }
    bool reads = llvm::any_of(
        x.operands, [&](const Node *o) { return fromProduct.contains(o); });
    if (!reads)
      continue;
    if (!isScalarOp(x.op))
      return "'" + x.info().mnemonic.str() + "' moves the " +
             (kind == "reduce" ? "reduction" : "product") +
             "'s elements; an epilogue reads it only at the element it "
             "computes";
    fromProduct.insert(&x);
  }
  if (!producer)
    return ("a " + kind + " kernel computes one " + producerName(kind)).str();
  if (b.output->type.shape != producer->type.shape)
    return ("each result of a " + kind + " kernel has its " +
            (kind == "reduce" ? "reduction" : "product") + "'s shape " +
            producer->type.str() + ", not " + b.output->type.str())
        .str();
  return "";
}

/// True for a row op: softmax or log_softmax along the last axis, one_hot,
/// and cross_entropy.
bool isRowOp(const Node &x) {
  switch (x.op) {
  case Op::Softmax:
  case Op::LogSoftmax:
    return x.type.rank() == 2 &&
           llvm::cantFail(normaliseAxis(x, x.intAttr("axis"), 2)) == 1;
  case Op::OneHot:
  case Op::CrossEntropy:
    return true;
  default:
    return false;
  }
}

} // namespace

llvm::SmallVector<const Node *, 4> kiln::bodyResults(const Graph &b) {
  llvm::SmallVector<const Node *, 4> r{b.output};
  r.append(b.moreOutputs.begin(), b.moreOutputs.end());
  return r;
}

const Node *kiln::bodyArg(const Graph &b, size_t k) {
  for (auto &np : b.nodes)
    if (np->op == Op::Arg && size_t(np->intAttr("index")) == k)
      return np.get();
  return nullptr;
}

const Shape *kiln::rowsDomain(const Graph &b) {
  for (auto &np : b.nodes)
    if (np->op != Op::Arg && np->op != Op::Constant &&
        np->op != Op::CrossEntropy)
      return &np->type.shape;
  // A kernel of losses alone runs over their logits' rows.
  for (auto &np : b.nodes)
    if (np->op == Op::CrossEntropy)
      return &np->operands[0]->type.shape;
  return nullptr;
}

namespace {

/// Why the body of a rows kernel is not computed row by row over one [R, C]
/// domain, or "": every value is [R, C] (or an arg, a constant, or a
/// cross_entropy), softmaxes run along rows, one_hot and cross_entropy read
/// their labels from an i32 [R] arg, and data movement reads only args, so
/// that each row's values can be computed from that row alone.
std::string rowsBodyError(const Graph &b) {
  const Shape *domain = rowsDomain(b);
  if (!domain || domain->size() != 2)
    return "a rows kernel computes rank-2 values";
  for (auto &np : b.nodes) {
    const Node &x = *np;
    if (x.op == Op::Arg || x.op == Op::Constant)
      continue;
    if (x.op == Op::CrossEntropy) {
      if (x.operands[1]->op != Op::Arg)
        return "the labels of a rows kernel's cross_entropy are an arg";
      if (x.operands[0]->type.shape != *domain)
        return "the logits of a rows kernel's cross_entropy are f32" +
               shapeStr(*domain) + ", not " + x.operands[0]->type.str();
      continue;
    }
    if (x.type.shape != *domain)
      return "a rows kernel computes rank-2 values of one shape: " +
             x.type.str() + " is not f32" + shapeStr(*domain);
    if (!fusesElementwise(x.op) && !isRowOp(x))
      return "'" + x.info().mnemonic.str() +
             "' cannot be part of a rows fused kernel";
    if (x.op == Op::OneHot && x.operands[0]->op != Op::Arg)
      return "the ids of a rows kernel's one_hot are an arg";
    bool moves = x.op == Op::Broadcast || x.op == Op::Transpose ||
                 x.op == Op::Slice || x.op == Op::Reshape;
    for (const Node *o : x.operands)
      if (moves && o->op != Op::Arg && o->op != Op::Constant)
        return "'" + x.info().mnemonic.str() +
               "' in a rows kernel reads an arg, not a computed value";
  }
  for (const Node *r : bodyResults(b))
    if (r->op != Op::CrossEntropy && r->type.shape != *domain)
      return "the results of a rows kernel are f32" + shapeStr(*domain) +
             " values or cross_entropy losses, not " + r->type.str();
  return "";
}

// fused {kind}: one arg per operand, of its type; the body returns the
// node's value and any further results.
llvm::Expected<TensorType> shapeFused(const Node &n) {
  if (!n.body)
    return makeError("'fused' needs a body");
  auto kind = n.getString("kind");
  if (!kind)
    return kind.takeError();
  bool rows = *kind == "rows";
  if (*kind != "elementwise" && *kind != "gemm" && *kind != "conv" &&
      *kind != "reduce" && !rows)
    return makeError("unknown fused kind '" + *kind +
                     "' (known: conv, elementwise, gemm, reduce, rows)");
  const Graph &b = *n.body;
  if (auto e = verifyGraph(b, /*isBody=*/true))
    return makeError("in the body of 'fused': " + llvm::toString(std::move(e)));
  if (!b.output)
    return makeError("the body of 'fused' has no return");
  if (b.objective || !b.updates.empty() || !b.gradients.empty())
    return makeError("the body of 'fused' may only return values");
  std::vector<const Node *> args(n.operands.size(), nullptr);
  for (auto &np : b.nodes) {
    const Node &x = *np;
    if (!fusesElementwise(x.op) && !isProducerOf(*kind, x.op) &&
        !(rows && isRowOp(x)))
      return makeError("'" + x.info().mnemonic + "' cannot be part of " +
                       (*kind == "elementwise" ? "an " : "a ") + *kind +
                       " fused kernel");
    // A rows kernel reads labels from i32 args.
    if (x.type.dtype != DType::F32 &&
        !(rows && x.op == Op::Arg && x.type.dtype == DType::I32))
      return makeError("a fused kernel computes f32 values, not " +
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
  // One loop (or one product's blocks) computes every result.
  auto results = bodyResults(b);
  for (const Node *r : results) {
    if (r->op == Op::Arg)
      return makeError("a fused kernel's result is an arg; use the operand");
    if (!rows && r->type.shape != b.output->type.shape)
      return makeError("the results of a fused kernel have one shape: " +
                       r->type.str() + " is not " + b.output->type.str());
  }
  for (size_t i = 0; i < results.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (results[i] == results[j])
        return makeError("a fused kernel returns one value twice");
  std::string why = rows                     ? rowsBodyError(b)
                    : *kind == "elementwise" ? ""
                                             : producerBodyError(b, *kind);
  if (!why.empty())
    return makeError(why);
  return b.output->type;
}

// result {index}: the fused operand's result number index (>= 1; result 0
// is the fused node itself).
llvm::Expected<TensorType> shapeResult(const Node &n) {
  auto index = n.getInt("index");
  if (!index)
    return index.takeError();
  const Node *f = n.operands[0];
  if (f->op != Op::Fused || !f->body)
    return makeError("'result' reads a fused node, not '" + f->info().mnemonic +
                     "'");
  int64_t count = 1 + f->body->moreOutputs.size();
  if (*index < 1 || *index >= count)
    return makeError("'result' index " + llvm::Twine(*index) +
                     " is out of range: the fused node has " +
                     llvm::Twine(count) +
                     " results, and result 0 is the "
                     "node itself");
  return f->body->moreOutputs[*index - 1]->type;
}

template <typename T>
void evalResult(const Node &n, llvm::ArrayRef<const Tensor *>, Tensor &out,
                EvalContext &ctx) {
  out = ctx.results.lookup(n.operands[0])[n.intAttr("index") - 1];
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
  if (!n.body->moreOutputs.empty()) {
    std::vector<Tensor> more;
    for (const Node *r : n.body->moreOutputs)
      more.push_back(values[r]);
    ctx.results[&n] = std::move(more);
  }
  out = std::move(values[n.body->output]);
}

} // namespace

void kiln::registerFusedRules(RuleTable &t) {
  t[size_t(Op::Arg)] = {shapeArg, KILN_EVAL(evalArg), noGradient};
  // Autodiff inlines fused nodes before it differentiates (inlineFused), so
  // their rules are never asked for a gradient.
  t[size_t(Op::Fused)] = {shapeFused, KILN_EVAL(evalFused), noGradient};
  t[size_t(Op::Result)] = {shapeResult, KILN_EVAL(evalResult), noGradient};
}
