//===- DropGradients.cpp - The gradients a training step consumes ---------===//
//
// Removes the `gradient` of every parameter the graph updates, then what
// only it read. The step `kiln train` runs returns its loss and new values:
// its updates read the gradients and nothing else needs them, so a weight's
// gradient can stay in the tiles of the GEMM whose epilogue applies the
// optimizer's update, and never reach memory. Gradients of inputs (--wrt)
// and of parameters nothing updates stay.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"

using namespace kiln;

bool kiln::runDropGradients(Graph &g) {
  llvm::StringSet<> updated;
  for (const StateUpdate &u : g.updates)
    updated.insert(u.name);
  size_t before = g.gradients.size();
  llvm::erase_if(g.gradients, [&](const NamedGradient &gr) {
    return updated.contains(gr.name);
  });
  if (g.gradients.size() == before)
    return false;
  runDCE(g);
  return true;
}
