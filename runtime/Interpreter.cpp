//===- Interpreter.cpp - The reference interpreter ------------------------===//
//
// Walks the nodes in order, allocates each result and calls the op's
// evaluation rule for the chosen precision.
//
//===----------------------------------------------------------------------===//
#include "runtime/Interpreter.h"
#include "ir/OpRules.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

using namespace kiln;

llvm::Expected<std::vector<Tensor>>
kiln::interpret(const Graph &g, const llvm::StringMap<Tensor> &leaves,
                const InterpOptions &opts) {
  if (opts.precision != DType::F32 && opts.precision != DType::F64)
    return makeError("the interpreter computes in f32 or f64");
  bool f64 = opts.precision == DType::F64;
  // With `only`, the nodes it needs: a walk back over the operands.
  llvm::DenseSet<const Node *> needed(opts.only.begin(), opts.only.end());
  for (size_t i = g.nodes.size(); i-- > 0 && !opts.only.empty();)
    if (needed.contains(g.nodes[i].get()))
      needed.insert(g.nodes[i]->operands.begin(), g.nodes[i]->operands.end());
  auto skipped = [&](const Node &n) {
    return !opts.only.empty() && !needed.contains(&n);
  };
  uint64_t bytes = 0;
  for (auto &n : g.nodes)
    if (!skipped(*n))
      bytes +=
          uint64_t(*numElements(n->type.shape)) *
          dtypeSize(isFloat(n->type.dtype) ? opts.precision : n->type.dtype);
  if (auto e = checkMemory(bytes, "interpreting @" + g.name))
    return std::move(e);
  EvalContext ctx;
  ctx.leaves = &leaves;
  ctx.seed = opts.seed;
  ctx.step = opts.step;
  std::vector<Tensor> values(g.nodes.size());
  llvm::DenseMap<const Node *, size_t> index;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = *g.nodes[i];
    index[&n] = i;
    if (skipped(n))
      continue;
    llvm::SmallVector<const Tensor *, 4> ins;
    for (const Node *o : n.operands)
      ins.push_back(&values[index.lookup(o)]);
    DType dt = isFloat(n.type.dtype) ? opts.precision : n.type.dtype;
    values[i] = Tensor(dt, n.type.shape);
    const OpRules &rules = opRules(n.op);
    if (f64)
      rules.evalF64(n, ins, values[i], ctx);
    else
      rules.evalF32(n, ins, values[i], ctx);
    if (!ctx.error.empty()) {
      std::string where;
      if (n.loc.isKnown())
        where = n.loc.str() + ": ";
      return makeError(where + ctx.error);
    }
  }
  return values;
}
