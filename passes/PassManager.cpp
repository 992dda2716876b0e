//===- PassManager.cpp - Running pass pipelines ---------------------------===//
//
// Parses the pipeline, runs each pass, and instruments it: printing after a
// pass, counting ops before and after (--stats) and timing with LLVM's
// Timer (--time-passes). The verifier runs after every pass, so a pass that
// breaks the graph is caught at once and named.
//
//===----------------------------------------------------------------------===//
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/Passes.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Timer.h"

using namespace kiln;

static const PassInfo kPasses[] = {
#define PASS(NAME, FN, DESC) {NAME, FN, DESC},
#include "passes/Passes.def"
};

llvm::ArrayRef<PassInfo> kiln::allPasses() { return kPasses; }

llvm::Error kiln::runPipeline(Graph &g, llvm::StringRef pipeline,
                              const PassOptions &opts, llvm::raw_ostream &os) {
  llvm::SmallVector<llvm::StringRef, 8> names;
  pipeline.split(names, ',', -1, /*KeepEmpty=*/false);
  std::vector<const PassInfo *> passes;
  for (llvm::StringRef n : names) {
    n = n.trim();
    auto it =
        llvm::find_if(kPasses, [&](const PassInfo &p) { return p.name == n; });
    if (it == std::end(kPasses)) {
      std::string known;
      for (const PassInfo &p : kPasses)
        known += (known.empty() ? "" : ", ") + p.name.str();
      return makeError("unknown pass '" + n + "' (known passes: " + known +
                       ")");
    }
    passes.push_back(it);
  }
  for (const std::string &p : opts.printAfter)
    if (!llvm::any_of(kPasses, [&](const PassInfo &i) { return i.name == p; }))
      return makeError("--print-after names unknown pass '" + p + "'");
  llvm::TimerGroup group("kiln-passes", "Kiln graph passes");
  // One timer per pass, alive until the report is printed.
  std::vector<std::unique_ptr<llvm::Timer>> timers;
  for (const PassInfo *p : passes) {
    size_t before = g.nodes.size();
    timers.push_back(std::make_unique<llvm::Timer>(p->name, p->name, group));
    bool changed;
    {
      llvm::TimeRegion region(opts.timePasses ? timers.back().get() : nullptr);
      changed = p->run(g);
    }
    if (opts.stats)
      llvm::errs() << "stats: " << p->name << ": " << before << " -> "
                   << g.nodes.size() << " ops"
                   << (changed ? "" : " (unchanged)") << "\n";
    if (auto e = verifyGraph(g))
      return makeError("the graph is invalid after pass '" + p->name +
                       "': " + llvm::toString(std::move(e)));
    if (opts.printAfterAll || llvm::is_contained(opts.printAfter, p->name)) {
      os << "// -----// IR after " << p->name << " //----- //\n";
      printGraph(g, os);
    }
  }
  if (opts.timePasses)
    group.print(llvm::errs(), /*ResetAfterPrint=*/true);
  return llvm::Error::success();
}

void kiln::replaceAllUses(Graph &g, Node *from, Node *to) {
  for (auto &n : g.nodes)
    for (Node *&o : n->operands)
      if (o == from)
        o = to;
  for (Node **root : g.roots())
    if (*root == from)
      *root = to;
}

void kiln::eraseNodesExcept(Graph &g,
                            const llvm::DenseSet<const Node *> &keep) {
  llvm::erase_if(g.nodes, [&](const std::unique_ptr<Node> &n) {
    return !keep.contains(n.get());
  });
}
