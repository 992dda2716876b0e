//===- Passes.h - Graph passes and the pass manager --------------*- C++
//-*-===//
//
// A pass is `bool runX(Graph &)`, returning whether it changed the graph; a
// pass that can refuse a graph is `Expected<bool> runX(Graph &)`, and a pass
// with options (`name<key=value,...>`, as LLVM's --passes) is
// `Expected<bool> runX(Graph &, const PassParams &)`. The pass manager runs
// a comma-separated pipeline with the instrumentation every pass gets for
// free.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_PASSES_H
#define KILN_PASSES_PASSES_H

#include "ir/Graph.h"
#include "llvm/ADT/DenseSet.h"
#include <functional>
#include <string>
#include <vector>

namespace kiln {

/// A pass's options, from `name<key=value,...>`: each key at most once,
/// and every key given must be one the pass reads (checkAllUsed).
class PassParams {
public:
  /// Parses the text between the angle brackets of `pass<...>`.
  static llvm::Expected<PassParams> parse(llvm::StringRef pass,
                                          llvm::StringRef text);
  bool empty() const { return entries.empty(); }
  bool has(llvm::StringRef key) const;
  /// The value of `key` as a number, or `def` if absent (an error if it is
  /// absent and there is no default, or not a finite number).
  llvm::Expected<double> number(llvm::StringRef key,
                                std::optional<double> def) const;
  /// true/false (or 1/0).
  llvm::Expected<bool> flag(llvm::StringRef key, bool def) const;
  llvm::Expected<std::string> string(llvm::StringRef key,
                                     std::optional<std::string> def) const;
  /// An error naming a key that no getter asked for (a misspelt option).
  llvm::Error checkAllUsed() const;
  /// `key=value,...` in the order given.
  std::string str() const;

private:
  std::string pass;
  std::vector<std::pair<std::string, std::string>> entries;
  mutable llvm::DenseSet<size_t> used;
  const std::string *find(llvm::StringRef key) const;
};

#define PASS(NAME, FN, DESC) bool FN(Graph &g);
#define FALLIBLE_PASS(NAME, FN, DESC) llvm::Expected<bool> FN(Graph &g);
#define PASS_WITH_PARAMS(NAME, FN, DESC)                                       \
  llvm::Expected<bool> FN(Graph &g, const PassParams &params);
#include "passes/Passes.def"

struct PassInfo {
  llvm::StringRef name;
  bool (*run)(Graph &);                         ///< or null
  llvm::Expected<bool> (*runFallible)(Graph &); ///< or null
  llvm::Expected<bool> (*runWithParams)(Graph &,
                                        const PassParams &); ///< or null
  llvm::StringRef description;
};
llvm::ArrayRef<PassInfo> allPasses();

/// The instrumentation every pass gets (kiln's --print-after-all,
/// --print-after=P, --print-before=P, --verify-each, --stats, --time-passes).
struct PassOptions {
  bool printAfterAll = false;
  std::vector<std::string> printAfter;
  std::vector<std::string> printBefore;
  /// Verify after every pass, so the error names the pass that broke the
  /// graph. Without it the graph is verified once, after the pipeline
  /// (builds with assertions verify after every pass regardless).
  bool verifyEach = false;
  bool stats = false;
  bool timePasses = false;
};

/// One step of a pipeline: a pass from Passes.def, or a pass a driver
/// configures (autodiff with --wrt), under the same instrumentation.
struct PipelineStep {
  std::string name;
  /// Whether it changed the graph, or why it could not run.
  std::function<llvm::Expected<bool>(Graph &)> run;
};

/// The steps of `pipeline` ("cse,dce", "optimizer<kind=sgd,momentum=0.9>";
/// empty: none). Unknown pass names, and options given to a pass that takes
/// none, are errors.
llvm::Expected<std::vector<PipelineStep>>
parsePipeline(llvm::StringRef pipeline);

/// Checks that every pass named by --print-after and --print-before exists.
llvm::Error checkPassNames(const PassOptions &opts);

/// Runs the steps on g, printing as `opts` asks to `os` (IR) and
/// llvm::errs() (statistics, timings).
llvm::Error runPasses(Graph &g, llvm::ArrayRef<PipelineStep> steps,
                      const PassOptions &opts, llvm::raw_ostream &os);

/// parsePipeline, then runPasses.
llvm::Error runPipeline(Graph &g, llvm::StringRef pipeline,
                        const PassOptions &opts, llvm::raw_ostream &os);

/// Replaces every use of `from` (operands, objective, output, updates) by
/// `to`.
void replaceAllUses(Graph &g, Node *from, Node *to);
/// Kiln differentiates and trains in float32 (the passes that build
/// gradients, optimizer updates and the mixup objective make f32 nodes); an
/// error from `pass` naming g's first f64 value, if it has one.
llvm::Error expectF32(const Graph &g, llvm::StringRef pass);
/// The nodes DCE keeps: the roots, the named leaves (inputs, params, state)
/// and every node they read.
llvm::DenseSet<const Node *> liveNodes(const Graph &g);
/// Deletes nodes outside `keep`, preserving order.
void eraseNodesExcept(Graph &g, const llvm::DenseSet<const Node *> &keep);

} // namespace kiln

#endif
