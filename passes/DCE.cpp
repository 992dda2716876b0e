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

bool kiln::runDCE(Graph &g) {
  llvm::DenseSet<const Node *> live;
  for (Node **root : g.roots())
    live.insert(*root);
  for (auto &n : g.nodes)
    if (n->op == Op::Input || n->op == Op::Param || n->op == Op::State)
      live.insert(n.get());
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it)
    if (live.contains(it->get()))
      for (const Node *o : (*it)->operands)
        live.insert(o);
  size_t before = g.nodes.size();
  eraseNodesExcept(g, live);
  return g.nodes.size() != before;
}
