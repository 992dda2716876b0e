//===- DCE.cpp - Dead code elimination ------------------------------------===//
//
// Removes ops whose value reaches neither the objective, the output nor a
// state update. Inputs, parameters and state stay even when unused: they are
// the graph's interface (checkpoints and data feeds name them).
//  1. Mark the roots and every named leaf live.
//  2. Walk nodes backwards; a live node marks its operands live.
//  3. Erase the rest.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "llvm/ADT/DenseSet.h"

using namespace kiln;

llvm::DenseSet<const Node *> kiln::liveNodes(const Graph &g) {
  llvm::DenseSet<const Node *> live;
  for (const Node *root : g.rootValues())
    live.insert(root);
  for (auto &n : g.nodes)
    if (n->op == Op::Input || n->op == Op::Param || n->op == Op::State)
      live.insert(n.get());
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it)
    if (live.contains(it->get()))
      for (const Node *o : (*it)->operands)
        live.insert(o);
  return live;
}

bool kiln::runDCE(Graph &g) {
  size_t before = g.nodes.size();
  eraseNodesExcept(g, liveNodes(g));
  return g.nodes.size() != before;
}
