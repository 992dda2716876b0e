//===- Fuzz.cpp - libFuzzer targets for every reader of user input --------===//
//
// One executable, kiln-fuzz, with a target per reader, chosen by
// `--target=NAME` (libFuzzer leaves flags that start with "--" to us):
//
//   frontend     a model file: parse, check, lower every model, verify, and
//                run the training pipeline on each that minimizes something
//   ir           an IR file: parse and verify, then one pass alone or the
//                training and kernel pipelines (chosen by the length)
//   safetensors  a safetensors file, and a checkpoint's metadata
//   data         IDX image and label files (gzipped or not), or a CSV file
//
// Every error a reader reports is a correct answer. What is a bug: a crash,
// a sanitizer report, a hang or runaway memory (libFuzzer's -timeout and
// -rss_limit_mb), and the oracles below, which abort: a graph that fails
// the verifier after lowering or after a pass, and a graph whose printed
// form does not parse back.
//
// tests/fuzz/run.sh seeds the corpora and runs each target; docs/testing.md
// says how to reproduce a crash.
//
//===----------------------------------------------------------------------===//
#include "frontend/Lower.h"
#include "frontend/Parser.h"
#include "frontend/Train.h"
#include "ir/IRParser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/Pipeline.h"
#include "runtime/Data.h"
#include "runtime/Safetensors.h"
#include "tools/Checkpoint.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace kiln;

namespace {

[[noreturn]] void bug(const llvm::Twine &what, llvm::StringRef detail = "") {
  llvm::errs() << "kiln-fuzz: " << what << "\n" << detail << "\n";
  std::abort();
}

/// `bytes` as the one buffer of a SourceMgr, named as kiln names a file.
struct Source {
  llvm::SourceMgr sm;
  unsigned id;
  Source(llvm::StringRef bytes, llvm::StringRef name)
      : id(sm.AddNewSourceBuffer(
            llvm::MemoryBuffer::getMemBufferCopy(bytes, name), llvm::SMLoc())) {
  }
};

/// Runs `steps` on g; a pass that leaves an invalid graph is a bug, any
/// other error is an answer.
void runChecked(Graph &g, llvm::ArrayRef<PipelineStep> steps) {
  PassOptions opts;
  opts.verifyEach = true;
  if (auto e = runPasses(g, steps, opts, llvm::nulls())) {
    std::string msg = llvm::toString(std::move(e));
    if (llvm::StringRef(msg).contains("is invalid after"))
      bug(msg);
  }
}

std::string printed(const Graph &g) {
  std::string text;
  llvm::raw_string_ostream os(text);
  printGraph(g, os);
  return text;
}

/// The oracle for every graph that exists: it verifies, and its text parses
/// back to a graph that verifies.
void checkGraph(const Graph &g, llvm::StringRef where) {
  if (auto e = verifyGraph(g))
    bug(where + ": invalid graph: " + llvm::toString(std::move(e)));
  std::string text = printed(g);
  Source src(text, "printed.kir");
  std::string errors;
  llvm::raw_string_ostream es(errors);
  Diagnostics diags(src.sm, es);
  auto back = parseIR(src.id, diags);
  if (diags.hadError() || back.size() != 1)
    bug(where + ": the printed graph does not parse back",
        errors + "\n" + text);
  if (auto e = verifyGraph(*back[0]))
    bug(where + ": the printed graph parses to an invalid graph: " +
            llvm::toString(std::move(e)),
        text);
}

/// The dimension names a model's arguments use.
void collectDims(const Expr &e, std::vector<std::string> &out) {
  if (e.kind == ExprKind::Name)
    out.push_back(e.name);
  for (const ExprPtr &a : e.args)
    if (a)
      collectDims(*a, out);
}

int fuzzFrontend(llvm::StringRef bytes) {
  Source src(bytes, "fuzz.kiln");
  Diagnostics diags(src.sm, llvm::nulls());
  Module m = parseModule(src.id, diags);
  checkModule(m, diags);
  std::vector<TrainConfig> trains = checkTrainBlocks(m, diags);
  if (diags.hadError())
    return 0;
  for (const FuncDecl &f : m.funcs) {
    if (!f.isModel)
      continue;
    // Free dimensions get 3 (as -D N=3 would), or the train block's batch.
    // The limits are lower than kiln's, which the lit tests check: a model
    // of a million ops is correct but takes seconds under the sanitizers.
    LowerOptions opts;
    opts.maxNodes = 20000;
    opts.maxUnrolled = 20000;
    for (const Formal &a : f.formals)
      for (const ExprPtr &d : a.type.dims) {
        std::vector<std::string> names;
        collectDims(*d, names);
        for (const std::string &n : names)
          opts.dims.try_emplace(n, 3);
      }
    const TrainConfig *train = nullptr;
    for (const TrainConfig &t : trains)
      if (t.model == f.name)
        train = &t;
    if (train && !f.formals.empty() && !f.formals[0].type.dims.empty() &&
        f.formals[0].type.dims[0]->kind == ExprKind::Name)
      opts.dims[f.formals[0].type.dims[0]->name] = train->batch;
    Diagnostics modelDiags(src.sm, llvm::nulls());
    auto g = lowerModel(m, f, opts, modelDiags);
    if (!g || modelDiags.hadError())
      continue;
    checkGraph(*g, "lowering @" + f.name);
    if (!g->objective)
      continue;
    TrainingOptions topts;
    if (train)
      topts.optimizer = &train->optimizer;
    auto steps = trainingPipeline(topts);
    if (!steps)
      bug("the training pipeline: " + llvm::toString(steps.takeError()));
    runChecked(*g, *steps);
    checkGraph(*g, "the training graph of @" + f.name);
  }
  return 0;
}

int fuzzIR(llvm::StringRef bytes) {
  Source src(bytes, "fuzz.kir");
  Diagnostics diags(src.sm, llvm::nulls());
  auto graphs = parseIR(src.id, diags);
  if (diags.hadError())
    return 0;
  for (auto &parsed : graphs) {
    if (auto e = verifyGraph(*parsed)) { // kiln opt's "invalid graph" error
      llvm::consumeError(std::move(e));
      continue;
    }
    checkGraph(*parsed, "parsing");
    // One pass alone, as `kiln opt --passes=NAME` runs it, or the whole
    // way to kernels, as `kiln dump --stage=opt` goes. Which one depends
    // on the input's length, so one input always runs the same passes and
    // every pass gets its share of the inputs.
    llvm::ArrayRef<PassInfo> passes = allPasses();
    size_t pick = bytes.size() % (passes.size() + 1);
    Graph &g = *parsed;
    if (pick < passes.size()) {
      const PassInfo &p = passes[pick];
      std::string pipeline = p.name.str();
      if (p.name == "optimizer")
        pipeline = "optimizer<kind=adam>";
      else if (p.name == "mix-targets")
        pipeline = "mix-targets<labels=y>";
      auto steps = parsePipeline(pipeline);
      if (!steps)
        bug("pipeline '" + pipeline +
            "': " + llvm::toString(steps.takeError()));
      runChecked(g, *steps);
      checkGraph(g, "pass " + pipeline);
      // fuse-epilogues runs to a fixed point: a second run changes nothing.
      if (p.name == "fuse-epilogues") {
        std::string once = printed(g);
        runChecked(g, *steps);
        if (printed(g) != once)
          bug("a second fuse-epilogues changed its result", once);
      }
      continue;
    }
    if (!g.objective || !g.gradients.empty() || !g.updates.empty())
      continue;
    auto steps = trainingPipeline();
    auto kernels = kernelPipeline();
    if (!steps || !kernels)
      bug("the pipelines do not parse");
    steps->insert(steps->end(), kernels->begin(), kernels->end());
    runChecked(g, *steps);
    checkGraph(g, "the training and kernel pipelines");
  }
  return 0;
}

int fuzzSafetensors(llvm::StringRef bytes) {
  auto file = parseSafetensorsFile(bytes, "fuzz.safetensors");
  if (!file) {
    llvm::consumeError(file.takeError());
    return 0;
  }
  train::Progress p;
  int64_t step = 0;
  if (auto e = train::readProgress("fuzz.safetensors", file->metadata,
                                   /*batch=*/64, /*settings=*/{},
                                   /*batchesPerEpoch=*/4, p, step)) {
    llvm::consumeError(std::move(e));
    return 0;
  }
  if (step != p.epoch * 4 + p.batchInEpoch || p.batchInEpoch >= 4)
    bug("readProgress accepted a position outside the epoch");
  return 0;
}

/// First byte 'C': a CSV file whose label column is "label". Any other
/// first byte (seeds.py writes 'I'): four bytes of little-endian length of
/// the image file, then the image file, then the label file.
int fuzzData(llvm::StringRef bytes) {
  if (bytes.empty())
    return 0;
  llvm::Expected<Dataset> d = makeError("");
  if (bytes[0] == 'C') {
    d = parseCsv(bytes.drop_front(), "fuzz.csv", "label");
  } else {
    if (bytes.size() < 5)
      return 0;
    uint32_t n = 0;
    for (int i = 4; i >= 1; --i)
      n = n << 8 | uint8_t(bytes[i]);
    llvm::StringRef rest = bytes.drop_front(5);
    n = std::min<uint32_t>(n, rest.size());
    d = parseIdx(rest.take_front(n), "fuzz-images.idx", rest.drop_front(n),
                 "fuzz-labels.idx");
  }
  if (!d) {
    llvm::consumeError(d.takeError());
    return 0;
  }
  if (d->images.shape()[0] != d->labels.numel() || d->labels.rank() != 1)
    bug("a dataset whose images and labels disagree");
  const int32_t *labels = d->labels.data<int32_t>();
  for (int64_t i = 0; i < d->labels.numel(); ++i)
    if (labels[i] < 0)
      bug("a negative label");
  return 0;
}

int (*target)(llvm::StringRef) = nullptr;

} // namespace

extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv) {
  static const std::pair<const char *, int (*)(llvm::StringRef)> targets[] = {
      {"frontend", fuzzFrontend},
      {"ir", fuzzIR},
      {"safetensors", fuzzSafetensors},
      {"data", fuzzData}};
  for (int i = 1; i < *argc; ++i) {
    llvm::StringRef arg = (*argv)[i];
    if (!arg.consume_front("--target="))
      continue;
    for (auto &[name, fn] : targets)
      if (arg == name)
        target = fn;
  }
  if (!target) {
    std::fprintf(stderr, "kiln-fuzz: pass --target=frontend|ir|safetensors|"
                         "data (then libFuzzer's own flags)\n");
    std::exit(2);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return target(llvm::StringRef(reinterpret_cast<const char *>(data), size));
}
