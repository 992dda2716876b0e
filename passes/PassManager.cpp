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
#include <cmath>

using namespace kiln;

static const PassInfo kPasses[] = {
#define PASS(NAME, FN, DESC) {NAME, FN, nullptr, nullptr, DESC},
#define FALLIBLE_PASS(NAME, FN, DESC) {NAME, nullptr, FN, nullptr, DESC},
#define PASS_WITH_PARAMS(NAME, FN, DESC) {NAME, nullptr, nullptr, FN, DESC},
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

//===-- Pass options -----------------------------------------------------===//

llvm::Expected<PassParams> PassParams::parse(llvm::StringRef pass,
                                             llvm::StringRef text) {
  PassParams p;
  p.pass = pass.str();
  llvm::SmallVector<llvm::StringRef, 8> items;
  text.split(items, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef item : items) {
    auto [key, value] = item.split('=');
    key = key.trim();
    value = value.trim();
    if (key.empty() || !item.contains('=') || value.empty())
      return makeError("pass '" + pass + "': expected key=value, got '" +
                       item.trim() + "'");
    if (p.find(key))
      return makeError("pass '" + pass + "': option '" + key +
                       "' is given twice");
    p.entries.push_back({key.str(), value.str()});
  }
  return p;
}

const std::string *PassParams::find(llvm::StringRef key) const {
  for (size_t i = 0; i < entries.size(); ++i)
    if (entries[i].first == key) {
      used.insert(i);
      return &entries[i].second;
    }
  return nullptr;
}

bool PassParams::has(llvm::StringRef key) const {
  return llvm::any_of(entries, [&](auto &e) { return e.first == key; });
}

llvm::Expected<std::string>
PassParams::string(llvm::StringRef key, std::optional<std::string> def) const {
  if (const std::string *v = find(key))
    return *v;
  if (def)
    return *def;
  return makeError("pass '" + pass + "' needs the option '" + key + "'");
}

llvm::Expected<double> PassParams::number(llvm::StringRef key,
                                          std::optional<double> def) const {
  const std::string *v = find(key);
  if (!v) {
    if (def)
      return *def;
    return makeError("pass '" + pass + "' needs the option '" + key + "'");
  }
  double x;
  if (llvm::StringRef(*v).getAsDouble(x) || !std::isfinite(x))
    return makeError("pass '" + pass + "': option '" + key +
                     "' must be a finite number, got '" + *v + "'");
  return x;
}

llvm::Expected<bool> PassParams::flag(llvm::StringRef key, bool def) const {
  const std::string *v = find(key);
  if (!v)
    return def;
  if (*v == "true" || *v == "1")
    return true;
  if (*v == "false" || *v == "0")
    return false;
  return makeError("pass '" + pass + "': option '" + key +
                   "' must be true or false, got '" + *v + "'");
}

llvm::Error PassParams::checkAllUsed() const {
  for (size_t i = 0; i < entries.size(); ++i)
    if (!used.contains(i))
      return makeError("pass '" + pass + "' has no option '" +
                       entries[i].first + "'");
  return llvm::Error::success();
}

std::string PassParams::str() const {
  std::string out;
  for (auto &[k, v] : entries)
    out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

//===-- Pipelines --------------------------------------------------------===//

/// Splits at the commas outside `<...>`.
static llvm::Expected<llvm::SmallVector<llvm::StringRef, 8>>
splitPipeline(llvm::StringRef pipeline) {
  llvm::SmallVector<llvm::StringRef, 8> items;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= pipeline.size(); ++i) {
    char c = i < pipeline.size() ? pipeline[i] : ',';
    if (c == '<')
      ++depth;
    else if (c == '>' && --depth < 0)
      return makeError("unbalanced '>' in pipeline '" + pipeline + "'");
    else if (c == ',' && depth == 0) {
      llvm::StringRef item = pipeline.slice(start, i).trim();
      if (!item.empty())
        items.push_back(item);
      start = i + 1;
    }
  }
  if (depth != 0)
    return makeError("unclosed '<' in pipeline '" + pipeline + "'");
  return items;
}

llvm::Expected<std::vector<PipelineStep>>
kiln::parsePipeline(llvm::StringRef pipeline) {
  auto items = splitPipeline(pipeline);
  if (!items)
    return items.takeError();
  std::vector<PipelineStep> steps;
  for (llvm::StringRef item : *items) {
    auto [n, rest] = item.split('<');
    n = n.trim();
    bool hasParams = item.contains('<');
    if (hasParams && !rest.trim().ends_with(">"))
      return makeError("expected '>' at the end of '" + item + "'");
    const PassInfo *p = findPass(n);
    if (!p)
      return makeError("unknown pass '" + n +
                       "' (known passes: " + knownPasses() + ")");
    if (!p->runWithParams && hasParams)
      return makeError("pass '" + n + "' takes no options");
    if (p->run) {
      steps.push_back(
          {p->name.str(), [run = p->run](Graph &g) -> llvm::Expected<bool> {
             return run(g);
           }});
      continue;
    }
    if (p->runFallible) {
      steps.push_back({p->name.str(), p->runFallible});
      continue;
    }
    auto params = PassParams::parse(n, hasParams ? rest.trim().drop_back()
                                                 : llvm::StringRef());
    if (!params)
      return params.takeError();
    steps.push_back({p->name.str(),
                     [run = p->runWithParams, params = std::move(*params)](
                         Graph &g) -> llvm::Expected<bool> {
                       auto changed = run(g, params);
                       if (!changed)
                         return changed.takeError();
                       if (auto e = params.checkAllUsed())
                         return std::move(e);
                       return *changed;
                     }});
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

llvm::Error kiln::expectF32(const Graph &g, llvm::StringRef pass) {
  // Fused bodies compute f32 only (the verifier's rule).
  auto it = llvm::find_if(g.nodes,
                          [](auto &n) { return n->type.dtype == DType::F64; });
  if (it == g.nodes.end())
    return llvm::Error::success();
  // Named as the printer numbers it, with what identifies it in the source.
  const Node *n = it->get();
  std::string what = n->info().mnemonic.str();
  if (n->findAttr("name"))
    what += " '" + n->stringAttr("name") + "'";
  if (n->loc.isKnown())
    what += ", " + n->loc.str();
  return makeError("pass '" + pass + "' works on f32 graphs only, but %" +
                   llvm::Twine(it - g.nodes.begin()) + " (" + what + ") of @" +
                   g.name + " is " + n->type.str());
}

void kiln::eraseNodesExcept(Graph &g,
                            const llvm::DenseSet<const Node *> &keep) {
  llvm::erase_if(g.nodes, [&](const std::unique_ptr<Node> &n) {
    return !keep.contains(n.get());
  });
}
