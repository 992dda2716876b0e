//===- KernelBody.cpp - Building the bodies of fused kernels --------------===//
//
// Bodies are built from args made on first use and clones of the ops they
// hold; readsAtElement follows every value computed from an arg.
//
//===----------------------------------------------------------------------===//
#include "passes/KernelBody.h"
#include "ir/OpRules.h"
#include "llvm/ADT/DenseSet.h"

using namespace kiln;

GraphUses::GraphUses(const Graph &g) {
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node *n = g.nodes[i].get();
    index[n] = i;
    for (Node *o : n->operands)
      if (users[o].empty() || users[o].back() != n)
        users[o].push_back(n);
  }
  for (const Node *r : g.rootValues())
    ++rootUses[r];
}

bool kiln::isElementwiseWork(const Node &n) {
  if (n.type.dtype != DType::F32)
    return false;
  if (n.op == Op::Fused)
    return n.stringAttr("kind") == "elementwise";
  return isScalarOp(n.op) && n.op != Op::StopGradient;
}

bool kiln::readsAtElement(const Node &c, size_t k) {
  if (!c.body)
    return isScalarOp(c.op);
  const Node *arg = bodyArg(*c.body, k);
  if (c.body->output == arg || llvm::is_contained(c.body->moreOutputs, arg))
    return false;
  // Every value computed from the arg, not only its direct readers: a
  // transpose of a scalar op on it reads it at other elements too.
  llvm::DenseSet<const Node *> from{arg};
  for (auto &np : c.body->nodes)
    if (llvm::any_of(np->operands,
                     [&](const Node *o) { return from.contains(o); })) {
      if (!isScalarOp(np->op))
        return false;
      from.insert(np.get());
    }
  return true;
}

BodyBuilder::BodyBuilder(llvm::StringRef name)
    : body(std::make_unique<Graph>()) {
  body->name = name.str();
}

Node *BodyBuilder::arg(Node *outer) {
  if (Node *a = argFor.lookup(outer))
    return a;
  operands.insert(outer);
  Node *a = llvm::cantFail(body->add(
      Op::Arg, {}, {{"index", int64_t(operands.size() - 1)}}, {}, outer->type));
  argFor[outer] = a;
  return a;
}

llvm::Expected<Node *> BodyBuilder::add(Op op, llvm::ArrayRef<Node *> ops,
                                        llvm::ArrayRef<Attr> attrs,
                                        Location loc) {
  return body->add(op, ops, attrs, loc);
}

llvm::Expected<llvm::SmallVector<Node *, 4>>
BodyBuilder::inlineWork(const Node &w, llvm::ArrayRef<Node *> ops) {
  auto copy = [&](const Node &x, llvm::ArrayRef<Node *> xs) {
    bool leaf = x.info().flags & Leaf;
    return body->add(x.op, xs, x.attrs, x.loc,
                     leaf ? std::optional<TensorType>(x.type) : std::nullopt);
  };
  if (!w.body) {
    auto n = copy(w, ops);
    if (!n)
      return n.takeError();
    return llvm::SmallVector<Node *, 4>{*n};
  }
  llvm::DenseMap<const Node *, Node *> clone;
  for (auto &np : w.body->nodes) {
    const Node &x = *np;
    if (x.op == Op::Arg) {
      clone[&x] = ops[x.intAttr("index")];
      continue;
    }
    llvm::SmallVector<Node *, 4> xs;
    for (const Node *o : x.operands)
      xs.push_back(clone.lookup(o));
    auto n = copy(x, xs);
    if (!n)
      return n.takeError();
    clone[&x] = *n;
  }
  llvm::SmallVector<Node *, 4> results{clone.lookup(w.body->output)};
  for (const Node *m : w.body->moreOutputs)
    results.push_back(clone.lookup(m));
  return results;
}

llvm::Expected<std::unique_ptr<Node>>
BodyBuilder::finish(Graph &g, llvm::StringRef kind,
                    llvm::ArrayRef<Node *> results, Location loc) {
  body->output = results[0];
  body->moreOutputs.assign(results.begin() + 1, results.end());
  llvm::SmallVector<Node *, 8> ops(operands.begin(), operands.end());
  auto fused = g.add(Op::Fused, ops, {{"kind", kind.str()}}, loc, std::nullopt,
                     std::move(body));
  if (!fused)
    return fused.takeError();
  std::unique_ptr<Node> f = std::move(g.nodes.back());
  g.nodes.pop_back();
  return std::move(f);
}
