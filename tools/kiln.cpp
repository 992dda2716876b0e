//===- kiln.cpp - The kiln driver -----------------------------------------===//
//
// `kiln check | dump | opt`: parse a model file, lower it to graph IR and
// print any stage; or read textual IR and run passes on it. Options are
// llvm::cl subcommand options; diagnostics go to stderr with carets, and any
// error makes the exit code 1.
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
#include "passes/Passes.h"
#include "runtime/Gradients.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/WithColor.h"
#include <random>

using namespace kiln;
namespace cl = llvm::cl;

static cl::SubCommand checkCmd("check", "Parse and verify a model file");
static cl::SubCommand dumpCmd("dump", "Print a model at a pipeline stage");
static cl::SubCommand optCmd("opt", "Run passes on textual IR");
static cl::SubCommand gradCmd("grad",
                              "Evaluate the objective and its gradients");
static cl::SubCommand initCmd("init", "Write initial parameters (and random "
                                      "inputs) as safetensors");

static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<file>"),
                                      cl::Required, cl::sub(checkCmd),
                                      cl::sub(dumpCmd), cl::sub(optCmd),
                                      cl::sub(gradCmd), cl::sub(initCmd));
static cl::list<std::string> defines("D", cl::Prefix,
                                     cl::desc("Bind a dimension: -D N=4"),
                                     cl::value_desc("NAME=VALUE"),
                                     cl::sub(checkCmd), cl::sub(dumpCmd),
                                     cl::sub(gradCmd), cl::sub(initCmd));
static cl::opt<std::string> modelName("model", cl::desc("The model to use"),
                                      cl::value_desc("name"), cl::sub(checkCmd),
                                      cl::sub(dumpCmd), cl::sub(gradCmd),
                                      cl::sub(initCmd));
static cl::list<std::string>
    wrt("wrt", cl::CommaSeparated,
        cl::desc("Also differentiate with respect to these inputs"),
        cl::value_desc("input,..."), cl::sub(dumpCmd), cl::sub(gradCmd));

static cl::opt<std::string> paramsFile("params",
                                       cl::desc("Parameters (safetensors)"),
                                       cl::value_desc("P.safetensors"),
                                       cl::sub(gradCmd));
static cl::opt<std::string> inputsFile("inputs",
                                       cl::desc("Inputs (safetensors); with "
                                                "init: write random inputs"),
                                       cl::value_desc("I.safetensors"),
                                       cl::sub(gradCmd), cl::sub(initCmd));
static cl::opt<std::string> outputFile("o", cl::desc("Output file"),
                                       cl::value_desc("file"), cl::Required,
                                       cl::sub(gradCmd), cl::sub(initCmd));
enum class Backend { JIT, Interp };
static cl::opt<Backend> backend(
    "backend", cl::desc("How to evaluate"), cl::init(Backend::JIT),
    cl::values(clEnumValN(Backend::JIT, "jit", "JIT-compiled native code"),
               clEnumValN(Backend::Interp, "interp",
                          "the reference interpreter")),
    cl::sub(gradCmd));
static cl::opt<bool>
    checkGrad("check-grad",
              cl::desc("Compare gradients with float64 central differences"),
              cl::sub(gradCmd));
static cl::opt<uint64_t> seed("seed", cl::desc("Random seed"), cl::init(0),
                              cl::sub(initCmd));
static cl::opt<int> intMax("int-max",
                           cl::desc("Random integer inputs lie in [0, K)"),
                           cl::value_desc("K"), cl::init(10), cl::sub(initCmd));

enum class Stage { AST, IR, Grad, Opt, LLVM, Asm };
static cl::opt<Stage>
    stage("stage", cl::desc("The stage to print"), cl::init(Stage::IR),
          cl::values(clEnumValN(Stage::AST, "ast", "the syntax tree"),
                     clEnumValN(Stage::IR, "ir", "the graph IR"),
                     clEnumValN(Stage::Grad, "grad", "the training graph"),
                     clEnumValN(Stage::Opt, "opt", "after the pass pipeline"),
                     clEnumValN(Stage::LLVM, "llvm", "the LLVM module"),
                     clEnumValN(Stage::Asm, "asm", "native assembly")),
          cl::sub(dumpCmd));
enum class Format { Text, Dot };
static cl::opt<Format>
    format("format", cl::desc("Output format"), cl::init(Format::Text),
           cl::values(clEnumValN(Format::Text, "text", "textual IR"),
                      clEnumValN(Format::Dot, "dot", "Graphviz")),
           cl::sub(dumpCmd), cl::sub(optCmd));
static cl::opt<std::string> mode("mode",
                                 cl::desc("Lower for 'train' or 'eval'"),
                                 cl::init("train"), cl::sub(dumpCmd));

static cl::opt<std::string> passes("passes",
                                   cl::desc("Comma-separated passes to run"),
                                   cl::sub(optCmd));
static cl::opt<bool> printAfterAll("print-after-all",
                                   cl::desc("Print the IR after every pass"),
                                   cl::sub(optCmd));
static cl::list<std::string> printAfter("print-after",
                                        cl::desc("Print the IR after pass P"),
                                        cl::value_desc("P"), cl::sub(optCmd));
static cl::opt<bool>
    stats("stats",
          cl::desc("Print op counts per pass (and, for grad, the compiled "
                   "step's memory plan)"),
          cl::sub(optCmd), cl::sub(dumpCmd), cl::sub(gradCmd));
static cl::opt<bool> timePasses(
    "time-passes",
    cl::desc("Time each graph pass and each phase of LLVM compilation"),
    cl::sub(optCmd), cl::sub(dumpCmd), cl::sub(gradCmd));
static cl::opt<unsigned>
    threads("threads", cl::desc("Threads for compiled code (0: all cores)"),
            cl::value_desc("T"), cl::init(0), cl::sub(gradCmd));
static cl::opt<unsigned> vectorWidth(
    "vector-width",
    cl::desc("Vector width in bits for compiled loops and the GEMM: 128, "
             "256 or 512 (default: LLVM's choice for loops, the CPU's widest "
             "for the GEMM)"),
    cl::value_desc("bits"), cl::init(0), cl::sub(gradCmd), cl::sub(dumpCmd));

static int fail(const llvm::Twine &msg) {
  llvm::WithColor::error(llvm::errs(), "kiln") << msg << "\n";
  return 1;
}

/// Parses -D NAME=VALUE bindings.
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
    if (value.getAsInteger(10, v) || v < 1)
      return makeError("-D " + d + ": the value must be a positive integer");
    dims[name] = v;
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
};
} // namespace

static std::unique_ptr<Loaded> loadModel(llvm::StringRef path) {
  auto buf = llvm::MemoryBuffer::getFileOrSTDIN(path, /*IsText=*/true);
  if (!buf) {
    fail("cannot read '" + path + "': " + buf.getError().message());
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

/// Lowers one model with -D bindings over its train block's batch.
static std::unique_ptr<Graph> lower(Loaded &l, const FuncDecl &model,
                                    const llvm::StringMap<int64_t> &defs,
                                    bool trainMode) {
  LowerOptions opts;
  opts.trainMode = trainMode;
  const TrainConfig *train = nullptr;
  for (const TrainConfig &t : l.trains)
    if (t.model == model.name)
      train = &t;
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
  warnUnusedDefines(l->module, *defs);
  if (!l->diags->hadError())
    for (const FuncDecl &f : l->module.funcs)
      if (f.isModel && (modelName.empty() || f.name == modelName))
        lower(*l, f, *defs, /*trainMode=*/true);
  return l->diags->hadError() ? 1 : 0;
}

/// Differentiates a lowered model and tidies the result (`--stage=grad`).
static llvm::Error makeTrainingGraph(Graph &g) {
  std::vector<std::string> inputs(wrt.begin(), wrt.end());
  PassOptions opts;
  opts.stats = stats;
  opts.timePasses = timePasses;
  if (auto e = differentiate(g, inputs))
    return e;
  return runPipeline(g, "simplify,cse,dce", opts, llvm::nulls());
}

/// A JIT for this run's --threads and --vector-width, or null after
/// reporting why not.
static std::unique_ptr<JIT> makeJIT() {
  JITOptions opts;
  opts.threads = threads;
  opts.vectorWidth = vectorWidth;
  auto jit = JIT::create(opts);
  if (!jit) {
    fail(llvm::toString(jit.takeError()));
    return nullptr;
  }
  return std::move(*jit);
}

/// With --time-passes: where compilation went, and LLVM's share of it.
static void reportCompileTimes(const CompileTimes &t) {
  if (!timePasses)
    return;
  auto ms = [](double s) { return s * 1e3; };
  double llvmPart = t.optimize + t.codegen;
  llvm::errs() << "===-- Kiln compilation (wall) --===\n"
               << llvm::format("  %8.1f ms  lowering to LLVM IR\n", ms(t.lower))
               << llvm::format("  %8.1f ms  LLVM optimisation (O3)\n",
                               ms(t.optimize))
               << llvm::format("  %8.1f ms  LLVM code generation (LLJIT)\n",
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

static const char *const stageNames[] = {"ast", "ir",   "grad",
                                         "opt", "llvm", "asm"};

static int runDump() {
  if (mode != "train" && mode != "eval")
    return fail("--mode must be 'train' or 'eval'");
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
  if (training)
    if (auto e = makeTrainingGraph(*g))
      return fail(llvm::toString(std::move(e)));
  if (stage == Stage::LLVM || stage == Stage::Asm) {
    if (format == Format::Dot)
      return fail("--format=dot is for graph stages, not --stage=" +
                  llvm::Twine(stageNames[int(stage.getValue())]));
    auto jit = makeJIT();
    if (!jit)
      return 1;
    auto text = stage == Stage::LLVM ? jit->llvmIR(*g, /*optimized=*/true)
                                     : jit->assembly(*g);
    if (!text)
      return fail(llvm::toString(text.takeError()));
    llvm::outs() << *text;
    return 0;
  }
  if (format == Format::Dot)
    printDot(*g, llvm::outs());
  else
    printGraph(*g, llvm::outs());
  return 0;
}

static int runOpt() {
  auto buf = llvm::MemoryBuffer::getFileOrSTDIN(inputFile, /*IsText=*/true);
  if (!buf)
    return fail("cannot read '" + inputFile + "': " + buf.getError().message());
  llvm::SourceMgr sm;
  unsigned id = sm.AddNewSourceBuffer(std::move(*buf), llvm::SMLoc());
  Diagnostics diags(sm);
  auto graphs = parseIR(id, diags);
  if (diags.hadError())
    return 1;
  PassOptions opts;
  opts.printAfterAll = printAfterAll;
  opts.printAfter.assign(printAfter.begin(), printAfter.end());
  opts.stats = stats;
  opts.timePasses = timePasses;
  for (auto &g : graphs) {
    if (auto e = verifyGraph(*g))
      return fail(inputFile + ": invalid graph @" + g->name + ": " +
                  llvm::toString(std::move(e)));
    if (auto e = runPipeline(*g, passes, opts, llvm::outs()))
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
    return makeError("cannot start the JIT");
  auto compiled = jit->compile(training);
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

static int runGrad() {
  if (paramsFile.empty() || inputsFile.empty())
    return fail("grad needs --params P.safetensors and --inputs I.safetensors");
  auto o = openModel();
  if (!o)
    return 1;
  auto forward = o->lowerIt(/*trainMode=*/true);
  auto training = o->lowerIt(/*trainMode=*/true);
  if (!forward || !training)
    return 1;
  if (auto e = makeTrainingGraph(*training))
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
  if (!checkGrad)
    return 0;
  auto checks = checkGradients(*forward, *training, *leaves);
  if (!checks)
    return fail(llvm::toString(checks.takeError()));
  bool ok = true;
  for (const GradCheck &c : *checks) {
    bool pass = c.worst <= 1e-4;
    ok &= pass;
    llvm::outs() << llvm::format("%-32s worst relative error %.2e over %lld "
                                 "elements%s\n",
                                 c.name.c_str(), c.worst, (long long)c.checked,
                                 pass ? "" : "  FAILED (> 1e-4)");
  }
  return ok ? 0 : 1;
}

static int runInit() {
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
  if (intMax < 1)
    return fail("--int-max must be at least 1");
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

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv,
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
  return fail("expected a command: check, dump, opt, grad or init (see kiln "
              "--help)");
}
