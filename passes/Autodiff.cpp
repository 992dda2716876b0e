//===- Autodiff.cpp - Reverse-mode differentiation of a graph -------------===//
//
// Reverse mode over the node list, after fused nodes are inlined:
//  1. Mark the nodes that depend on a differentiated leaf (not through
//     stop_gradient, and never integer-valued ones).
//  2. Seed the objective's gradient with 1.
//  3. Walk the nodes backwards from the objective; each marked node with a
//     gradient asks its op's rule for its operands' gradients, and several
//     uses of one value add up (fan-out, shared weights).
// Backward nodes carry the location of the forward node they differentiate.
//
//===----------------------------------------------------------------------===//
#include "passes/Autodiff.h"
#include "ir/OpRules.h"
#include "passes/Passes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

using namespace kiln;

/// Replaces each fused node, and the `result` nodes that read it, by
/// clones of its body's ops at its place, so every op autodiff meets has a
/// gradient rule of its own. Returns what each replaced node became.
static llvm::DenseMap<Node *, Node *> inlineFused(Graph &g) {
  llvm::DenseMap<Node *, Node *> to;
  if (llvm::none_of(g.nodes, [](auto &n) { return n->op == Op::Fused; }))
    return to;
  std::vector<std::unique_ptr<Node>> order;
  for (auto &np : g.nodes) {
    if (np->op == Op::Result) {
      const Graph &body = *np->operands[0]->body;
      to[np.get()] = to.lookup(body.moreOutputs[np->intAttr("index") - 1]);
      continue;
    }
    for (Node *&o : np->operands)
      if (Node *r = to.lookup(o))
        o = r;
    if (np->op != Op::Fused) {
      order.push_back(std::move(np));
      continue;
    }
    // Body nodes map to their clones in `to` too; bodies are not shared.
    for (auto &bp : np->body->nodes) {
      if (bp->op == Op::Arg) {
        to[bp.get()] = np->operands[bp->intAttr("index")];
        continue;
      }
      auto c = std::make_unique<Node>();
      c->op = bp->op;
      c->type = bp->type;
      c->attrs = bp->attrs;
      c->loc = bp->loc;
      for (Node *o : bp->operands)
        c->operands.push_back(to.lookup(o));
      to[bp.get()] = c.get();
      order.push_back(std::move(c));
    }
    to[np.get()] = to.lookup(np->body->output);
  }
  // The replaced nodes (and their bodies) die with the old list.
  std::vector<std::unique_ptr<Node>> old = std::move(g.nodes);
  g.nodes = std::move(order);
  for (Node **r : g.roots())
    if (Node *n = to.lookup(*r))
      *r = n;
  return to;
}

std::vector<Node *> kiln::buildGradients(Graph &g, Node *objective,
                                         llvm::ArrayRef<Node *> wrt) {
  if (Node *n = inlineFused(g).lookup(objective))
    objective = n;
  size_t end = 0;
  while (g.nodes[end].get() != objective)
    ++end;
  llvm::DenseSet<const Node *> needed(wrt.begin(), wrt.end());
  for (size_t i = 0; i <= end; ++i) {
    Node *n = g.nodes[i].get();
    if (n->op == Op::StopGradient || !isFloat(n->type.dtype))
      continue;
    if (llvm::any_of(n->operands, [&](Node *o) { return needed.contains(o); }))
      needed.insert(n);
  }
  llvm::DenseMap<Node *, Node *> grad;
  if (needed.contains(objective)) {
    GradBuilder seed(g, *objective);
    grad[objective] = seed.constant(1, {});
  }
  for (size_t i = end + 1; i-- > 0;) {
    Node *n = g.nodes[i].get();
    Node *gn = grad.lookup(n);
    if (!gn || (n->info().flags & Leaf))
      continue;
    GradBuilder b(g, *n);
    llvm::SmallVector<Node *, 4> operandGrads(n->operands.size(), nullptr);
    opRules(n->op).grad(b, *n, gn, operandGrads);
    for (size_t k = 0; k < n->operands.size(); ++k) {
      Node *o = n->operands[k], *d = operandGrads[k];
      if (!d || !needed.contains(o))
        continue;
      Node *&acc = grad[o];
      acc = acc ? b.add(acc, d) : d;
    }
  }
  std::vector<Node *> out;
  for (Node *w : wrt) {
    Node *d = grad.lookup(w);
    if (!d) {
      GradBuilder b(g, *w);
      d = b.constant(0, w->type.shape);
    }
    out.push_back(d);
  }
  return out;
}

llvm::Error kiln::differentiate(Graph &g,
                                llvm::ArrayRef<std::string> wrtInputs) {
  if (!g.objective)
    return makeError("graph @" + g.name +
                     " has no objective ('minimize') to differentiate");
  if (!g.gradients.empty())
    return makeError("graph @" + g.name + " already has gradients");
  if (auto e = expectF32(g, "autodiff"))
    return e;
  std::vector<Node *> wrt = g.leaves(Op::Param);
  for (const std::string &name : wrtInputs) {
    Node *in = g.findLeaf(Op::Input, name);
    if (!in)
      return makeError("--wrt names no input of @" + g.name + ": '" + name +
                       "'");
    if (!isFloat(in->type.dtype))
      return makeError("input '" + name + "' is " + in->type.str() +
                       "; integer inputs have no gradient");
    wrt.push_back(in);
  }
  std::vector<Node *> grads = buildGradients(g, g.objective, wrt);
  for (size_t i = 0; i < wrt.size(); ++i)
    g.gradients.push_back({wrt[i]->stringAttr("name"), grads[i]});
  return llvm::Error::success();
}

llvm::Expected<bool> kiln::runAutodiff(Graph &g) {
  if (!g.objective || !g.gradients.empty())
    return false;
  if (auto e = differentiate(g))
    return std::move(e);
  return true;
}
