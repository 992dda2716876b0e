//===- MixTargets.cpp - The objective of mixup and cutmix -----------------===//
//
// mix-targets<labels=y> prepares a graph for batches mixed as
// lambda * x + (1 - lambda) * x[perm] (mixup) or pasted together (cutmix).
// The loss against the mixed soft targets lambda * onehot(y) +
// (1 - lambda) * onehot(y[perm]) is lambda * L(y) + (1 - lambda) * L(y[perm])
// for any loss linear in its one-hot target (cross-entropy, with or without
// label smoothing, and binary cross-entropy); for other losses it is the
// objective the mixup paper's code trains.
//  1. Add the inputs `mixup.labels` (the partners' labels, typed as
//     `labels`) and `mixup.lambda` (f32[]).
//  2. Copy, in order, every node that depends on `labels` up to the
//     objective, reading mixup.labels instead.
//  3. The objective becomes lambda * objective + (1 - lambda) * its copy.
//
//===----------------------------------------------------------------------===//
#include "ir/Grad.h"
#include "passes/Passes.h"
#include "llvm/ADT/DenseMap.h"

using namespace kiln;

llvm::Expected<bool> kiln::runMixTargets(Graph &g, const PassParams &params) {
  auto labelsName = params.string("labels", std::nullopt);
  if (!labelsName)
    return labelsName.takeError();
  Node *labels = g.findLeaf(Op::Input, *labelsName);
  if (!labels)
    return makeError("pass 'mix-targets': @" + g.name + " has no input '" +
                     *labelsName + "'");
  if (!g.objective)
    return makeError("pass 'mix-targets': @" + g.name +
                     " has no objective to mix");
  if (!g.gradients.empty())
    return makeError("pass 'mix-targets' must run before autodiff");
  if (auto e = expectF32(g, "mix-targets"))
    return std::move(e);
  for (const char *name : {"mixup.labels", "mixup.lambda"})
    if (g.findLeaf(Op::Input, name))
      return makeError("pass 'mix-targets': @" + g.name +
                       " already has an input '" + name + "'");
  Node *partner = llvm::cantFail(g.add(Op::Input, {},
                                       {{"name", std::string("mixup.labels")}},
                                       labels->loc, labels->type));
  Node *lambda = llvm::cantFail(g.add(Op::Input, {},
                                      {{"name", std::string("mixup.lambda")}},
                                      {}, TensorType{DType::F32, {}}));
  // The nodes up to the objective that depend on the labels, copied.
  llvm::DenseMap<Node *, Node *> copy{{labels, partner}};
  size_t end = 0;
  while (g.nodes[end].get() != g.objective)
    ++end;
  for (size_t i = 0; i <= end; ++i) {
    Node *n = g.nodes[i].get();
    if (!llvm::any_of(n->operands, [&](Node *o) { return copy.count(o); }))
      continue;
    llvm::SmallVector<Node *, 4> ops;
    for (Node *o : n->operands)
      ops.push_back(copy.count(o) ? copy[o] : o);
    auto c = g.add(n->op, ops, n->attrs, n->loc, std::nullopt,
                   n->body ? cloneGraph(*n->body) : nullptr);
    if (!c)
      return c.takeError();
    copy[n] = *c;
  }
  if (!copy.count(g.objective))
    return makeError("pass 'mix-targets': the objective of @" + g.name +
                     " does not depend on '" + *labelsName + "'");
  // The copies sit after the objective; the blend after them.
  GradBuilder b(g, *g.objective);
  Node *one = b.constant(1, {});
  Node *mixed = b.add(b.mul(lambda, g.objective),
                      b.mul(b.sub(one, lambda), copy[g.objective]));
  g.objective = mixed;
  return true;
}
