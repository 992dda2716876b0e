//===- PassManager.cpp - Running pass pipelines ---------------------------===//
//
// Parses the pipeline, runs each pass, and instruments it: printing before
// and after a pass, counting ops before and after (--stats) and timing with
// LLVM's Timer (--time-passes). As in LLVM's opt, the verifier runs once
// after the pipeline, or after every pass with --verify-each (and always in
// builds with assertions), so a pass that breaks the graph is named.
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

static const PassInfo *findPass(llvm::StringRef name) {
  auto it =
      llvm::find_if(kPasses, [&](const PassInfo &p) { return p.name == name; });
  return it == std::end(kPasses) ? nullptr : it;
}

static std::string knownPasses() {
  std::string known;
  for (const PassInfo &p : kPasses)
    known += (known.empty() ? "" : ", ") + p.name.str();
  return known;
}

llvm::Expected<std::vector<PipelineStep>>
kiln::parsePipeline(llvm::StringRef pipeline) {
  llvm::SmallVector<llvm::StringRef, 8> names;
  pipeline.split(names, ',', -1, /*KeepEmpty=*/false);
  std::vector<PipelineStep> steps;
  for (llvm::StringRef n : names) {
    n = n.trim();
    const PassInfo *p = findPass(n);
    if (!p)
      return makeError("unknown pass '" + n +
                       "' (known passes: " + knownPasses() + ")");
    steps.push_back(
        {p->name.str(),
         [run = p->run](Graph &g) -> llvm::Expected<bool> { return run(g); }});
  }
  return steps;
}

llvm::Error kiln::checkPassNames(const PassOptions &opts) {
  for (auto [flag, names] : {std::pair{"--print-after", &opts.printAfter},
                             std::pair{"--print-before", &opts.printBefore}})
    for (const std::string &p : *names)
      if (!findPass(p))
        return makeError(llvm::Twine(flag) + " names unknown pass '" + p +
                         "' (known passes: " + knownPasses() + ")");
  return llvm::Error::success();
}

llvm::Error kiln::runPasses(Graph &g, llvm::ArrayRef<PipelineStep> steps,
                            const PassOptions &opts, llvm::raw_ostream &os) {
  if (auto e = checkPassNames(opts))
    return e;
#ifndef NDEBUG
  const bool verifyEach = true;
#else
  const bool verifyEach = opts.verifyEach;
#endif
  llvm::TimerGroup group("kiln-passes", "Kiln graph passes");
  // One timer per pass, alive until the report is printed.
  std::vector<std::unique_ptr<llvm::Timer>> timers;
  for (const PipelineStep &p : steps) {
    if (llvm::is_contained(opts.printBefore, p.name)) {
      os << "// -----// IR before " << p.name << " //----- //\n";
      printGraph(g, os);
    }
    size_t before = g.nodes.size();
    timers.push_back(std::make_unique<llvm::Timer>(p.name, p.name, group));
    llvm::Expected<bool> changed = false;
    {
      llvm::TimeRegion region(opts.timePasses ? timers.back().get() : nullptr);
      changed = p.run(g);
    }
    if (!changed)
      return changed.takeError();
    if (opts.stats)
      llvm::errs() << "stats: " << p.name << ": " << before << " -> "
                   << g.nodes.size() << " ops"
                   << (*changed ? "" : " (unchanged)") << "\n";
    if (verifyEach)
      if (auto e = verifyGraph(g))
        return makeError("the graph is invalid after pass '" + p.name +
                         "': " + llvm::toString(std::move(e)));
    if (opts.printAfterAll || llvm::is_contained(opts.printAfter, p.name)) {
      os << "// -----// IR after " << p.name << " //----- //\n";
      printGraph(g, os);
    }
  }
  if (!verifyEach && !steps.empty())
    if (auto e = verifyGraph(g))
      return makeError("the graph is invalid after the passes (--verify-each "
                       "names the pass that broke it): " +
                       llvm::toString(std::move(e)));
  if (opts.timePasses)
    group.print(llvm::errs(), /*ResetAfterPrint=*/true);
  return llvm::Error::success();
}

llvm::Error kiln::runPipeline(Graph &g, llvm::StringRef pipeline,
                              const PassOptions &opts, llvm::raw_ostream &os) {
  auto steps = parsePipeline(pipeline);
  if (!steps)
    return steps.takeError();
  return runPasses(g, *steps, opts, os);
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
