//===- Passes.h - Graph passes and the pass manager --------------*- C++
//-*-===//
//
// A pass is `bool runX(Graph &)`, returning whether it changed the graph.
// The pass manager runs a comma-separated pipeline with the instrumentation
// every pass gets for free.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_PASSES_H
#define KILN_PASSES_PASSES_H

#include "ir/Graph.h"
#include "llvm/ADT/DenseSet.h"
#include <string>
#include <vector>

namespace kiln {

#define PASS(NAME, FN, DESC) bool FN(Graph &g);
#include "passes/Passes.def"

struct PassInfo {
  llvm::StringRef name;
  bool (*run)(Graph &);
  llvm::StringRef description;
};
llvm::ArrayRef<PassInfo> allPasses();

struct PassOptions {
  bool printAfterAll = false;
  std::vector<std::string> printAfter;
  bool stats = false;
  bool timePasses = false;
};

/// Runs `pipeline` ("cse,dce"; empty: none) on g, printing as `opts` asks to
/// `os` (IR) and llvm::errs() (statistics, timings). Unknown pass names are
/// an error listing the known ones. The graph is verified after each pass.
llvm::Error runPipeline(Graph &g, llvm::StringRef pipeline,
                        const PassOptions &opts, llvm::raw_ostream &os);

/// Replaces every use of `from` (operands, objective, output, updates) by
/// `to`.
void replaceAllUses(Graph &g, Node *from, Node *to);
/// Deletes nodes outside `keep`, preserving order.
void eraseNodesExcept(Graph &g, const llvm::DenseSet<const Node *> &keep);

} // namespace kiln

#endif
