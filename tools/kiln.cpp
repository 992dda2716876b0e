//===- kiln.cpp - The kiln driver -----------------------------------------===//
//
// `kiln check | dump | opt | grad | init | help`: parse a model file, lower
// it to graph IR and print any stage; read textual IR and run passes on it;
// evaluate and check gradients; write initial values. Options are llvm::cl
// subcommand options in Kiln's own category. LLVM's internal options are
// unregistered, so a flag that is not Kiln's is an error, and so is a Kiln
// flag that does not apply to what was asked (Flags.cpp). Diagnostics go to
// stderr with carets, and any error makes the exit code 1.
//
//===----------------------------------------------------------------------===//
#include "codegen/JIT.h"
#include "frontend/Lower.h"
#include "frontend/Parser.h"
#include "frontend/Train.h"
#include "ir/IRParser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/Autodiff.h"
#include "passes/FusionRemarks.h"
#include "passes/Passes.h"
#include "passes/Pipeline.h"
#include "runtime/Gradients.h"
#include "support/Files.h"
#include "tools/Flags.h"
#include "tools/Train.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/WithColor.h"
#include <random>

using namespace kiln;
using namespace kiln::flags;

/// Parses -D NAME=VALUE bindings; a name bound twice is an error.
static llvm::Expected<llvm::StringMap<int64_t>> parseDefines() {
  llvm::StringMap<int64_t> dims;
  for (llvm::StringRef d : defines) {
    auto [name, value] = d.split('=');
    bool nameOk =
        !name.empty() && (llvm::isAlpha(name[0]) || name[0] == '_') &&
        llvm::all_of(name, [](char c) { return llvm::isAlnum(c) || c == '_'; });
    if (!nameOk || !d.contains('='))
      return makeError("-D '" + d + "': expected NAME=VALUE, as in -D N=4");
    int64_t v;
    if (value.getAsInteger(10, v) || v < 1) {
      // All digits and still no int64: too large. Else (0, -3, 4x): not
      // a positive integer.
      bool digits = !value.empty() && llvm::all_of(value, llvm::isDigit) &&
                    llvm::any_of(value, [](char c) { return c != '0'; }) &&
                    value.getAsInteger(10, v);
      return makeError("-D " + d + ": the value " +
                       (digits ? "is out of range (at most 2^63 - 1)"
                               : "must be a positive integer"));
    }
    if (!dims.try_emplace(name, v).second)
      return makeError("-D binds " + name + " twice (" + name + "=" +
                       llvm::Twine(dims[name]) + " and " + d + ")");
  }
  return dims;
}

namespace {
/// A model file, parsed and checked.
struct Loaded {
  llvm::SourceMgr sm;
  std::unique_ptr<Diagnostics> diags;
  Module module;
  std::vector<TrainConfig> trains;
  /// Run-time errors that name a place in the model show its line.
  Loaded() { setErrorSources(&sm); }
  ~Loaded() { setErrorSources(nullptr); }
};
} // namespace

static std::unique_ptr<Loaded> loadModel(llvm::StringRef path) {
  auto buf = readInput(path, kMaxSourceBytes, "a model file");
  if (!buf) {
    fail("cannot read " + llvm::toString(buf.takeError()));
    return nullptr;
  }
  auto l = std::make_unique<Loaded>();
  unsigned id = l->sm.AddNewSourceBuffer(std::move(*buf), llvm::SMLoc());
  l->diags = std::make_unique<Diagnostics>(l->sm);
  l->module = parseModule(id, *l->diags);
  checkModule(l->module, *l->diags);
  l->trains = checkTrainBlocks(l->module, *l->diags);
  if (!l->diags->hadError() &&
      !llvm::any_of(l->module.funcs,
                    [](const FuncDecl &f) { return f.isModel; }))
    l->diags->error(llvm::SMLoc::getFromPointer(
                        l->sm.getMemoryBuffer(id)->getBufferStart()),
                    "the file defines no model");
  return l;
}

static void collectNames(const Expr &e, llvm::StringSet<> &out) {
  if (e.kind == ExprKind::Name)
    out.insert(e.name);
  for (const ExprPtr &a : e.args)
    if (a)
      collectNames(*a, out);
}

/// Warns about -D bindings that no model's arguments mention (a typo).
static void warnUnusedDefines(const Module &m,
                              const llvm::StringMap<int64_t> &defs) {
  llvm::StringSet<> used;
  for (const FuncDecl &f : m.funcs)
    if (f.isModel)
      for (const Formal &a : f.formals)
        for (const ExprPtr &d : a.type.dims)
          collectNames(*d, used);
  for (auto &kv : defs)
    if (!used.contains(kv.getKey()))
      llvm::WithColor::warning(llvm::errs(), "kiln")
          << "-D " << kv.getKey() << "=" << kv.getValue() << ": no model in "
          << inputFile << " has a dimension named '" << kv.getKey() << "'\n";
}

/// The train block of `model`, or null.
static const TrainConfig *trainConfigOf(const Loaded &l,
                                        const FuncDecl &model) {
  for (const TrainConfig &t : l.trains)
    if (t.model == model.name)
      return &t;
  return nullptr;
}

/// What `model`'s train block adds to the training pipeline of g.
static TrainingOptions trainingOptionsOf(const Loaded &l, const FuncDecl &model,
                                         const Graph &g) {
  TrainingOptions opts;
  if (const TrainConfig *t = trainConfigOf(l, model)) {
    opts.optimizer = &t->optimizer;
    std::vector<Node *> inputs = g.leaves(Op::Input);
    if ((t->mixup > 0 || t->cutmix > 0) && inputs.size() == 2)
      opts.mixLabels = inputs[1]->stringAttr("name");
  }
  return opts;
}

/// Lowers one model with -D bindings over its train block's batch.
static std::unique_ptr<Graph> lower(Loaded &l, const FuncDecl &model,
                                    const llvm::StringMap<int64_t> &defs,
                                    bool trainMode) {
  LowerOptions opts;
  opts.trainMode = trainMode;
  const TrainConfig *train = trainConfigOf(l, model);
  // The batch size binds the leading dimension of the first input.
  if (train && !model.formals.empty() && !model.formals[0].type.dims.empty() &&
      model.formals[0].type.dims[0]->kind == ExprKind::Name)
    opts.dims[model.formals[0].type.dims[0]->name] = train->batch;
  for (auto &kv : defs)
    opts.dims[kv.getKey()] = kv.getValue();
  auto g = lowerModel(l.module, model, opts, *l.diags);
  if (g && train && !defs.count(model.formals[0].type.dims[0]->name))
    checkDataFits(*train, *g, *l.diags);
  if (g)
    if (auto e = verifyGraph(*g)) {
      fail("internal error: lowering produced an invalid graph: " +
           llvm::toString(std::move(e)));
      return nullptr;
    }
  return g;
}

static const FuncDecl *selectModel(Loaded &l) {
  std::vector<std::string> models;
  for (const FuncDecl &f : l.module.funcs)
    if (f.isModel)
      models.push_back(f.name);
  if (!modelName.empty()) {
    const FuncDecl *f = l.module.findFunc(modelName);
    if (!f || !f->isModel) {
      fail("no model '" + modelName + "' in " + inputFile +
           " (models: " + llvm::join(models, ", ") + ")");
      return nullptr;
    }
    return f;
  }
  if (models.size() != 1) {
    fail(inputFile + " defines " + llvm::Twine(models.size()) + " models (" +
         llvm::join(models, ", ") + "); choose one with --model");
    return nullptr;
  }
  return l.module.findFunc(models[0]);
}

static int runCheck() {
  auto defs = parseDefines();
  if (!defs)
    return fail(llvm::toString(defs.takeError()));
  auto l = loadModel(inputFile);
  if (!l)
    return 1;
  // After errors the module may lack what the bindings name: no warning.
  if (l->diags->hadError())
    return 1;
  warnUnusedDefines(l->module, *defs);
  // --model checks that model, which must exist; without it, every model.
  if (!modelName.empty()) {
    const FuncDecl *f = selectModel(*l);
    if (!f)
      return 1;
    lower(*l, *f, *defs, /*trainMode=*/true);
  } else {
    for (const FuncDecl &f : l->module.funcs)
      if (f.isModel)
        lower(*l, f, *defs, /*trainMode=*/true);
  }
  return l->diags->hadError() ? 1 : 0;
}

/// Differentiates a lowered model and tidies the result: the passes behind
/// `--stage=grad`, under --print-after-all and the other instrumentation.
static llvm::Error makeTrainingGraph(Graph &g, TrainingOptions opts,
                                     bool kernels = false) {
  opts.wrtInputs.assign(wrt.begin(), wrt.end());
  auto steps = trainingPipeline(opts);
  if (!steps)
    return steps.takeError();
  // --stage=opt: then the kernels the JIT compiles (fused nodes).
  if (kernels) {
    auto more = kernelPipeline();
    if (!more)
      return more.takeError();
    steps->insert(steps->end(), more->begin(), more->end());
  }
  return runPasses(g, *steps, passOptions(), llvm::outs());
}

/// A JIT for this run's --threads, --vector-width, --mcpu and --mattr.
static llvm::Expected<std::unique_ptr<JIT>> makeJIT() {
  JITOptions opts;
  opts.threads = threads;
  opts.vectorWidth = vectorWidth;
  opts.cpu = mcpu;
  opts.features = mattr;
  return JIT::create(opts);
}

/// With --time-passes: where compilation went, and LLVM's share of it.
static void reportCompileTimes(const CompileTimes &t) {
  if (!timePasses)
    return;
  auto ms = [](double s) { return s * 1e3; };
  double llvmPart = t.gemm + t.optimize + t.codegen;
  llvm::errs() << "===-- Kiln compilation (wall) --===\n";
  if (t.gemm > 0)
    llvm::errs() << llvm::format(
        "  %8.1f ms  GEMM micro-kernels (once per JIT)\n", ms(t.gemm));
  llvm::errs() << llvm::format("  %8.1f ms  lowering to LLVM IR\n", ms(t.lower))
               << llvm::format("  %8.1f ms  LLVM optimisation (O3)\n",
                               ms(t.optimize))
               << llvm::format("  %8.1f ms  LLVM code generation and linking\n",
                               ms(t.codegen))
               << llvm::format("  %8.1f ms  total; LLVM's share %.0f%%\n",
                               ms(t.total()),
                               t.total() > 0 ? 100 * llvmPart / t.total() : 0);
}

/// With --stats: the compiled step's workspace, and what sharing saved.
static void reportMemoryPlan(const BufferPlan &plan) {
  if (!stats)
    return;
  int64_t regions = 0;
  for (int64_t b : plan.bytes)
    regions += b > 0;
  auto kib = [](int64_t bytes) { return bytes / 1024.0; };
  llvm::errs() << "===-- Kiln memory plan --===\n"
               << llvm::format("  %10.1f KiB  workspace (%lld buffers)\n",
                               kib(plan.workspaceBytes), (long long)regions)
               << llvm::format("  %10.1f KiB  without sharing\n",
                               kib(plan.unsharedBytes()));
}

/// The model file with -D bindings, parsed and checked, and the model chosen
/// by --model; null after reporting errors.
struct Opened {
  std::unique_ptr<Loaded> file;
  llvm::StringMap<int64_t> defs;
  const FuncDecl *model = nullptr;
  /// Lowers the chosen model; null after reporting errors.
  std::unique_ptr<Graph> lowerIt(bool trainMode) {
    auto g = lower(*file, *model, defs, trainMode);
    return g && !file->diags->hadError() ? std::move(g) : nullptr;
  }
};

static std::optional<Opened> openModel(bool needModel = true) {
  auto defs = parseDefines();
  if (!defs) {
    fail(llvm::toString(defs.takeError()));
    return std::nullopt;
  }
  Opened o{loadModel(inputFile), std::move(*defs)};
  if (!o.file || o.file->diags->hadError())
    return std::nullopt;
  warnUnusedDefines(o.file->module, o.defs);
  if (needModel && !(o.model = selectModel(*o.file)))
    return std::nullopt;
  return o;
}

static int runDump() {
  if (auto e = checkDumpFlags())
    return fail(llvm::toString(std::move(e)));
  auto o = openModel(/*needModel=*/stage != Stage::AST);
  if (!o)
    return 1;
  if (stage == Stage::AST) {
    printAST(o->file->module, llvm::outs());
    return 0;
  }
  auto g = o->lowerIt(mode == "train");
  if (!g)
    return 1;
  // grad, opt, llvm and asm show the training step: the training graph in
  // train mode (if the model minimizes something), else the forward graph.
  bool training = stage == Stage::Grad ||
                  (stage != Stage::IR && mode == "train" && g->objective);
  if (!training) {
    std::string why =
        stage == Stage::IR ? "--stage=ir prints the graph before any pass"
        : mode == "eval"
            ? "with --mode=eval, --stage=" + stageName().str() +
                  " shows the forward graph, which no pass changes"
            : "@" + g->name +
                  " minimizes nothing, so --stage=" + stageName().str() +
                  " shows the forward graph, which no pass changes";
    if (auto e = refusePassFlags(why))
      return fail(llvm::toString(std::move(e)));
  } else {
    // opt, llvm and asm show the step `kiln train` runs, which returns no
    // gradients; grad shows them.
    TrainingOptions topts = trainingOptionsOf(*o->file, *o->model, *g);
    topts.dropGradients = stage != Stage::Grad;
    if (auto e = makeTrainingGraph(*g, topts, /*kernels=*/stage == Stage::Opt))
      return fail(llvm::toString(std::move(e)));
  }
  if (stage == Stage::LLVM || stage == Stage::Asm) {
    auto jit = makeJIT();
    if (!jit)
      return fail(llvm::toString(jit.takeError()));
    auto text = stage == Stage::LLVM ? (*jit)->llvmIR(*g, /*optimized=*/true)
                                     : (*jit)->assembly(*g);
    if (!text)
      return fail(llvm::toString(text.takeError()));
    llvm::outs() << *text;
    return 0;
  }
  // The compiled step's shape: what the issue of fusion measures.
  if (stats && training && stage == Stage::Opt) {
    BufferPlan plan = planMemory(*g);
    llvm::errs() << "stats: kernels = " << plan.kernels << "\n"
                 << "stats: peak_bytes = " << plan.workspaceBytes << "\n";
  }
  if (remarks) {
    if (!training)
      return fail("--remarks explains the training step's kernels; " +
                  std::string(mode == "eval" ? "--mode=eval shows"
                                             : "@" + g->name + " has") +
                  " none");
    for (const FusionRemark &r : fusionRemarks(*g)) {
      if (r.loc.isKnown())
        llvm::errs() << r.loc.str() << ": ";
      llvm::errs() << "remark: " << r.text << "\n";
    }
  }
  if (format == Format::Dot)
    printDot(*g, llvm::outs());
  else
    printGraph(*g, llvm::outs());
  return 0;
}

static int runOpt() {
  auto buf = readInput(inputFile, kMaxSourceBytes, "an IR file");
  if (!buf)
    return fail("cannot read " + llvm::toString(buf.takeError()));
  llvm::SourceMgr sm;
  unsigned id = sm.AddNewSourceBuffer(std::move(*buf), llvm::SMLoc());
  Diagnostics diags(sm);
  auto graphs = parseIR(id, diags);
  if (diags.hadError())
    return 1;
  for (auto &g : graphs) {
    if (auto e = verifyGraph(*g))
      return fail(inputFile + ": invalid graph @" + g->name + ": " +
                  llvm::toString(std::move(e)));
    if (auto e = runPipeline(*g, passes, passOptions(), llvm::outs()))
      return fail(llvm::toString(std::move(e)));
    if (format == Format::Dot)
      printDot(*g, llvm::outs());
    else
      printGraph(*g, llvm::outs());
  }
  return 0;
}

/// The loss and gradients of a training graph, from compiled code.
static llvm::Expected<TensorMap>
jitGradients(Graph &training, const llvm::StringMap<Tensor> &leaves) {
  auto jit = makeJIT();
  if (!jit)
    return jit.takeError();
  auto compiled = (*jit)->compile(training);
  if (!compiled)
    return compiled.takeError();
  reportCompileTimes(compiled->times());
  reportMemoryPlan(compiled->plan());
  auto values = compiled->run(leaves);
  if (!values)
    return values.takeError();
  // Roots come in Graph::roots() order: objective, output, updates,
  // gradients.
  TensorMap out;
  auto roots = training.roots();
  for (size_t i = 0; i < roots.size(); ++i) {
    if (roots[i] == &training.objective)
      out["loss"] = std::move((*values)[i]);
    for (NamedGradient &gr : training.gradients)
      if (roots[i] == &gr.value)
        out[gr.name] = std::move((*values)[i]);
  }
  return out;
}

/// --check-grad: the gradients `grads` (from --backend) against float64
/// central differences; 1 if any tensor fails.
static int reportGradientCheck(const Graph &training, const TensorMap &grads,
                               const llvm::StringMap<Tensor> &leaves) {
  GradCheckOptions opts; // the bound for float32 gradients
  opts.samples = gradSamples;
  auto checks = checkGradients(training, grads, leaves, opts);
  if (!checks)
    return fail(llvm::toString(checks.takeError()));
  const char *who = backend == Backend::JIT ? "jit" : "interp";
  bool ok = true;
  for (const GradCheck &c : *checks) {
    bool pass = c.passed(opts);
    ok &= pass;
    std::string kinks;
    if (c.oneSided)
      kinks += llvm::formatv(", {0} one-sided next to a kink", c.oneSided);
    if (c.kinks)
      kinks += llvm::formatv(", {0} at a kink left out", c.kinks);
    llvm::outs() << llvm::format("%-32s %s: worst relative error %.2e over "
                                 "%lld elements%s%s\n",
                                 c.name.c_str(), who, c.worst,
                                 (long long)c.checked, kinks.c_str(),
                                 pass        ? ""
                                 : c.checked ? "  FAILED"
                                             : "  FAILED (nothing compared)");
  }
  if (!ok)
    llvm::errs() << llvm::format(
        "kiln: --check-grad: some gradients differ from finite differences "
        "by more than %.0e, or have no element that could be compared\n",
        opts.tolerance);
  return ok ? 0 : 1;
}

static int runGrad() {
  if (auto e = checkGradFlags())
    return fail(llvm::toString(std::move(e)));
  auto o = openModel();
  if (!o)
    return 1;
  auto training = o->lowerIt(/*trainMode=*/true);
  if (!training)
    return 1;
  if (auto e = makeTrainingGraph(*training, {}))
    return fail(llvm::toString(std::move(e)));
  auto params = readSafetensors(paramsFile);
  if (!params)
    return fail(llvm::toString(params.takeError()));
  auto inputs = readSafetensors(inputsFile);
  if (!inputs)
    return fail(llvm::toString(inputs.takeError()));
  auto leaves = bindLeaves(*training, *params, *inputs);
  if (!leaves)
    return fail(llvm::toString(leaves.takeError()));
  auto grads = backend == Backend::JIT ? jitGradients(*training, *leaves)
                                       : evaluateGradients(*training, *leaves);
  if (!grads)
    return fail(llvm::toString(grads.takeError()));
  if (auto e = writeSafetensors(outputFile, *grads))
    return fail(llvm::toString(std::move(e)));
  llvm::outs() << llvm::format("loss %.9g\n", (*grads)["loss"].at(0));
  if (!checkGrad)
    return 0;
  return reportGradientCheck(*training, *grads, *leaves);
}

static int runInit() {
  if (auto e = checkInitFlags())
    return fail(llvm::toString(std::move(e)));
  auto o = openModel();
  if (!o)
    return 1;
  auto g = o->lowerIt(/*trainMode=*/true);
  if (!g)
    return 1;
  uint64_t bytes = 0;
  for (auto &n : g->nodes)
    if (n->op == Op::Param || n->op == Op::State ||
        (n->op == Op::Input && !inputsFile.empty()))
      bytes += uint64_t(*numElements(n->type.shape)) * 4;
  if (auto e = checkMemory(bytes, "initialising @" + g->name))
    return fail(llvm::toString(std::move(e)));
  if (auto e = writeSafetensors(outputFile, initialParams(*g, seed)))
    return fail(llvm::toString(std::move(e)));
  if (inputsFile.empty())
    return 0;
  // Random inputs: floats uniform in [0, 1), integers uniform in [0, K).
  std::mt19937_64 rng(seed + 1);
  TensorMap inputs;
  for (Node *in : g->leaves(Op::Input)) {
    Tensor t(in->type.dtype, in->type.shape);
    for (int64_t i = 0; i < t.numel(); ++i)
      if (in->type.dtype == DType::I32)
        t.data<int32_t>()[i] = int32_t(rng() % uint64_t(intMax));
      else
        t.data<float>()[i] = float(double(rng() >> 11) * 0x1.0p-53);
    inputs[in->stringAttr("name")] = std::move(t);
  }
  if (auto e = writeSafetensors(inputsFile, inputs))
    return fail(llvm::toString(std::move(e)));
  return 0;
}

/// The chosen model and its train block with the flags applied, for
/// `train` and `eval`; null after reporting errors.
static std::unique_ptr<ModelSource> openTraining(Opened &o) {
  const TrainConfig *t = trainConfigOf(*o.file, *o.model);
  if (!t) {
    fail("model '" + o.model->name + "' in " + inputFile +
         " has no train block (train " + o.model->name +
         " { data = ..., batch = ..., optimizer = ... })");
    return nullptr;
  }
  if (o.model->formals.size() != 2 || o.model->formals[0].type.dims.empty() ||
      o.model->formals[0].type.dims[0]->kind != ExprKind::Name) {
    o.file->diags->error(t->loc, "to train, model '" + o.model->name +
                                     "' must take (examples [N, ...], labels "
                                     "[N]) with a named batch dimension N, "
                                     "which the batch size binds");
    return nullptr;
  }
  auto m = std::make_unique<ModelSource>();
  m->path = inputFile;
  m->config = *t;
  if (epochs.getNumOccurrences())
    m->config.epochs = epochs;
  if (batch.getNumOccurrences())
    m->config.batch = batch;
  if (seed.getNumOccurrences())
    m->config.seed = seed;
  if (lr.getNumOccurrences())
    m->config.optimizer.args["lr"] = lr;
  std::string batchDim = o.model->formals[0].type.dims[0]->name;
  if (o.defs.count(batchDim)) {
    fail("-D " + batchDim + " binds the batch dimension; set it with --batch");
    return nullptr;
  }
  Loaded *file = o.file.get();
  const FuncDecl *model = o.model;
  llvm::StringMap<int64_t> defs = o.defs;
  TrainConfig config = m->config;
  m->lower = [file, model, defs, batchDim, config](int64_t n, bool train) {
    llvm::StringMap<int64_t> d = defs;
    d[batchDim] = n;
    auto g = lower(*file, *model, d, train);
    if (g) {
      // The data must fit at every batch size the run compiles.
      TrainConfig at = config;
      at.batch = n;
      checkDataFits(at, *g, *file->diags);
    }
    return g && !file->diags->hadError() ? std::move(g) : nullptr;
  };
  // The model must lower before anything runs: its errors are then the
  // only ones printed, and nothing says "training" first.
  if (!m->lower(m->config.batch, /*train=*/true))
    return nullptr;
  auto [line, col] = file->sm.getLineAndColumn(t->dataLoc);
  m->dataLocation =
      (inputFile + ":" + llvm::Twine(line) + ":" + llvm::Twine(col) + ": ")
          .str();
  return m;
}

/// `train` and `eval`: check the flags, open the model, run `command`.
static int runTraining(llvm::Error (*checkFlags)(),
                       int (*command)(ModelSource &)) {
  if (auto e = checkFlags())
    return fail(llvm::toString(std::move(e)));
  auto o = openModel();
  if (!o)
    return 1;
  auto m = openTraining(*o);
  return m ? command(*m) : 1;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  std::vector<const char *> args;
  if (int status = prepareCommandLine(argc, argv, args); status >= 0)
    return status;
  cl::ParseCommandLineOptions(int(args.size()), args.data(),
                              "kiln: a compiler for neural-network training\n");
  if (checkCmd)
    return runCheck();
  if (dumpCmd)
    return runDump();
  if (optCmd)
    return runOpt();
  if (gradCmd)
    return runGrad();
  if (initCmd)
    return runInit();
  if (trainCmd)
    return runTraining(checkTrainFlags, runTrainCommand);
  if (evalCmd)
    return runTraining(checkEvalFlags, runEvalCommand);
  return fail("expected a command: check, dump, opt, grad, init, train, eval "
              "or help "
              "(see kiln --help)");
}
