//===- Flags.cpp - The kiln driver's command line -------------------------===//
//
// llvm::cl accepts any top-level option in every subcommand, and LLVM's
// libraries register about 300 of their own (--print-after-all among them,
// which would shadow Kiln's). So before parsing, every option outside Kiln's
// category and cl's generic one (--help, --version) is unregistered: LLVM's
// code keeps reading their defaults, and a user who types one gets
// "Unknown command line argument" instead of a flag silently taken.
//
//===----------------------------------------------------------------------===//
#include "tools/Flags.h"
#include "runtime/Gradients.h"
#include "runtime/Safetensors.h"
#include "runtime/ThreadPool.h"
#include "support/Diagnostics.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Host.h"
#include <cmath>

using namespace kiln;

static llvm::SourceMgr *errorSources = nullptr;

void kiln::setErrorSources(llvm::SourceMgr *sm) { errorSources = sm; }

/// Where `text` names a position `FILE:LINE:COL: ` in a buffer of sm: the
/// position, and the text without it.
static std::optional<std::pair<llvm::SMLoc, std::string>>
locate(llvm::SourceMgr &sm, llvm::StringRef text) {
  for (unsigned id = 1; id <= sm.getNumBuffers(); ++id) {
    llvm::StringRef file = sm.getMemoryBuffer(id)->getBufferIdentifier();
    size_t at = file.empty() ? llvm::StringRef::npos : text.find(file);
    if (at == llvm::StringRef::npos)
      continue;
    llvm::StringRef rest = text.substr(at + file.size());
    unsigned line, col;
    if (!rest.consume_front(":") || rest.consumeInteger(10, line) ||
        !rest.consume_front(":") || rest.consumeInteger(10, col) ||
        !rest.consume_front(": "))
      continue;
    llvm::SMLoc loc = sm.FindLocForLineAndColumn(id, line, col);
    if (loc.isValid())
      return std::pair{loc, (text.substr(0, at) + rest).str()};
  }
  return std::nullopt;
}

int kiln::fail(const llvm::Twine &msg) {
  std::string text = msg.str();
  // The first line is the error; later ones may be located notes
  // ("FILE:LINE:COL: note: ...").
  llvm::SmallVector<llvm::StringRef, 4> lines;
  llvm::StringRef(text).split(lines, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    if (errorSources)
      if (auto where = locate(*errorSources, lines[i])) {
        Diagnostics d(*errorSources);
        llvm::StringRef rest = where->second;
        if (i > 0 && rest.consume_front("note: "))
          d.note(where->first, rest);
        else
          d.error(where->first, rest);
        continue;
      }
    // Names and strings from files and flags may hold escape sequences.
    if (i == 0)
      llvm::WithColor::error(llvm::errs(), "kiln")
          << printable(lines[i]) << "\n";
    else
      llvm::errs() << printable(lines[i]) << "\n";
  }
  return 1;
}

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

namespace kiln::flags {

static cl::OptionCategory kilnCategory("Kiln options");

cl::SubCommand checkCmd("check", "Parse and verify a model file");
cl::SubCommand dumpCmd("dump", "Print a model at a pipeline stage");
cl::SubCommand optCmd("opt", "Run passes on textual IR");
cl::SubCommand gradCmd("grad", "Evaluate the objective and its gradients");
cl::SubCommand initCmd("init", "Write initial parameters (and random "
                               "inputs) as safetensors");
cl::SubCommand trainCmd("train", "Train a model as its train block says "
                                 "(flags override it)");
cl::SubCommand evalCmd("eval", "Loss and accuracy of a checkpoint on the "
                               "test split");
static cl::SubCommand helpCmd("help", "Describe kiln or one of its commands: "
                                      "kiln help [COMMAND]");

cl::opt<std::string> inputFile(cl::Positional, cl::desc("<file>"), cl::Required,
                               cl::cat(kilnCategory), cl::sub(checkCmd),
                               cl::sub(dumpCmd), cl::sub(optCmd),
                               cl::sub(gradCmd), cl::sub(initCmd),
                               cl::sub(trainCmd), cl::sub(evalCmd));
cl::list<std::string>
    defines("D", cl::Prefix, cl::desc("Bind a dimension: -D N=4"),
            cl::value_desc("NAME=VALUE"), cl::cat(kilnCategory),
            cl::sub(checkCmd), cl::sub(dumpCmd), cl::sub(gradCmd),
            cl::sub(initCmd), cl::sub(trainCmd), cl::sub(evalCmd));
cl::opt<std::string> modelName("model", cl::desc("The model to use"),
                               cl::value_desc("name"), cl::cat(kilnCategory),
                               cl::sub(checkCmd), cl::sub(dumpCmd),
                               cl::sub(gradCmd), cl::sub(initCmd),
                               cl::sub(trainCmd), cl::sub(evalCmd));
cl::list<std::string>
    wrt("wrt", cl::CommaSeparated,
        cl::desc("Also differentiate with respect to these inputs"),
        cl::value_desc("input,..."), cl::cat(kilnCategory), cl::sub(dumpCmd),
        cl::sub(gradCmd));

cl::opt<std::string> paramsFile("params", cl::desc("Parameters (safetensors)"),
                                cl::value_desc("P.safetensors"),
                                cl::cat(kilnCategory), cl::sub(gradCmd));
cl::opt<std::string> inputsFile("inputs",
                                cl::desc("Inputs (safetensors); with init: "
                                         "write random inputs"),
                                cl::value_desc("I.safetensors"),
                                cl::cat(kilnCategory), cl::sub(gradCmd),
                                cl::sub(initCmd));
cl::opt<std::string> outputFile("o", cl::desc("Output file"),
                                cl::value_desc("file"), cl::Required,
                                cl::cat(kilnCategory), cl::sub(gradCmd),
                                cl::sub(initCmd));
cl::opt<Backend> backend("backend", cl::desc("How to evaluate"),
                         cl::init(Backend::JIT),
                         cl::values(clEnumValN(Backend::JIT, "jit",
                                               "JIT-compiled native code"),
                                    clEnumValN(Backend::Interp, "interp",
                                               "the reference interpreter")),
                         cl::cat(kilnCategory), cl::sub(gradCmd),
                         cl::sub(trainCmd), cl::sub(evalCmd));
cl::opt<bool>
    checkGrad("check-grad",
              cl::desc("Compare the backend's gradients with float64 central "
                       "differences"),
              cl::cat(kilnCategory), cl::sub(gradCmd));
static const std::string gradSamplesDesc =
    "Distinct elements --check-grad compares per tensor, picked "
    "deterministically (all of a smaller tensor; default " +
    std::to_string(GradCheckOptions().samples) + ")";
cl::opt<int64_t> gradSamples("grad-samples", cl::desc(gradSamplesDesc),
                             cl::value_desc("K"),
                             cl::init(GradCheckOptions().samples),
                             cl::cat(kilnCategory), cl::sub(gradCmd));
cl::opt<uint64_t> seed("seed",
                       cl::desc("Random seed (train: overrides the train "
                                "block's)"),
                       cl::init(0), cl::cat(kilnCategory), cl::sub(initCmd),
                       cl::sub(trainCmd));

// Training.
cl::opt<int64_t> epochs("epochs",
                        cl::desc("Epochs to train (in all, "
                                 "counting a checkpoint's)"),
                        cl::value_desc("E"), cl::cat(kilnCategory),
                        cl::sub(trainCmd));
cl::opt<int64_t> batch("batch", cl::desc("Examples per batch"),
                       cl::value_desc("B"), cl::cat(kilnCategory),
                       cl::sub(trainCmd), cl::sub(evalCmd));
cl::opt<double> lr("lr", cl::desc("The optimizer's learning rate"),
                   cl::value_desc("X"), cl::cat(kilnCategory),
                   cl::sub(trainCmd));
cl::opt<std::string> checkpoint("checkpoint",
                                cl::desc("Checkpoint file (safetensors): "
                                         "written after every epoch; read "
                                         "by --resume and eval"),
                                cl::value_desc("PATH"), cl::cat(kilnCategory),
                                cl::sub(trainCmd), cl::sub(evalCmd));
cl::opt<bool> resume("resume",
                     cl::desc("Continue bit-exactly from --checkpoint"),
                     cl::cat(kilnCategory), cl::sub(trainCmd));
cl::opt<std::string> metricsFile("metrics",
                                 cl::desc("Write per-epoch metrics (CSV)"),
                                 cl::value_desc("FILE.csv"),
                                 cl::cat(kilnCategory), cl::sub(trainCmd));
cl::opt<std::string> plotFile("plot",
                              cl::desc("Draw the loss and accuracy curves "
                                       "(PNG)"),
                              cl::value_desc("FILE.png"), cl::cat(kilnCategory),
                              cl::sub(trainCmd));
cl::opt<std::string> initFile("init",
                              cl::desc("Start from these parameter values"),
                              cl::value_desc("P.safetensors"),
                              cl::cat(kilnCategory), cl::sub(trainCmd));
cl::opt<int64_t> maxSteps("steps",
                          cl::desc("Stop after K steps in all (writing the "
                                   "checkpoint and metrics)"),
                          cl::value_desc("K"), cl::cat(kilnCategory),
                          cl::sub(trainCmd));
cl::opt<bool> shuffle("shuffle",
                      cl::desc("Shuffle the training data every epoch "
                               "(--shuffle=false: file order)"),
                      cl::init(true), cl::cat(kilnCategory), cl::sub(trainCmd));
cl::opt<bool> checkNumerics(
    "check-numerics",
    cl::desc("On a non-finite loss, name the first op that produced NaN or "
             "Inf (keeps a copy of the state before every step)"),
    cl::cat(kilnCategory), cl::sub(trainCmd));
cl::opt<int64_t> kfold("kfold",
                       cl::desc("K-fold cross-validation on the training "
                                "data: mean and std of the accuracy"),
                       cl::value_desc("K"), cl::cat(kilnCategory),
                       cl::sub(trainCmd));
cl::opt<int> intMax("int-max", cl::desc("Random integer inputs lie in [0, K)"),
                    cl::value_desc("K"), cl::init(10), cl::cat(kilnCategory),
                    cl::sub(initCmd));

cl::opt<Stage>
    stage("stage", cl::desc("The stage to print"), cl::init(Stage::IR),
          cl::values(clEnumValN(Stage::AST, "ast", "the syntax tree"),
                     clEnumValN(Stage::IR, "ir", "the graph IR"),
                     clEnumValN(Stage::Grad, "grad", "the training graph"),
                     clEnumValN(Stage::Opt, "opt", "after the pass pipeline"),
                     clEnumValN(Stage::LLVM, "llvm", "the LLVM module"),
                     clEnumValN(Stage::Asm, "asm", "native assembly")),
          cl::cat(kilnCategory), cl::sub(dumpCmd));
cl::opt<Format>
    format("format", cl::desc("Output format"), cl::init(Format::Text),
           cl::values(clEnumValN(Format::Text, "text", "textual IR"),
                      clEnumValN(Format::Dot, "dot", "Graphviz")),
           cl::cat(kilnCategory), cl::sub(dumpCmd), cl::sub(optCmd));
cl::opt<std::string> mode("mode", cl::desc("Lower for 'train' or 'eval'"),
                          cl::init("train"), cl::cat(kilnCategory),
                          cl::sub(dumpCmd));

cl::opt<std::string> passes("passes", cl::desc("Comma-separated passes to run"),
                            cl::cat(kilnCategory), cl::sub(optCmd));

// Pass instrumentation, wherever Kiln's passes run.
static cl::opt<bool> printAfterAll("print-after-all",
                                   cl::desc("Print the IR after every pass"),
                                   cl::cat(kilnCategory), cl::sub(optCmd),
                                   cl::sub(dumpCmd), cl::sub(gradCmd),
                                   cl::sub(trainCmd));
static cl::list<std::string>
    printAfter("print-after", cl::desc("Print the IR after passes P,..."),
               cl::value_desc("P"), cl::CommaSeparated, cl::cat(kilnCategory),
               cl::sub(optCmd), cl::sub(dumpCmd), cl::sub(gradCmd),
               cl::sub(trainCmd));
static cl::list<std::string>
    printBefore("print-before", cl::desc("Print the IR before passes P,..."),
                cl::value_desc("P"), cl::CommaSeparated, cl::cat(kilnCategory),
                cl::sub(optCmd), cl::sub(dumpCmd), cl::sub(gradCmd),
                cl::sub(trainCmd));
static cl::opt<bool> verifyEach(
    "verify-each",
    cl::desc("Verify the graph after every pass, naming the one that breaks "
             "it (default: once, after the passes)"),
    cl::cat(kilnCategory), cl::sub(optCmd), cl::sub(dumpCmd), cl::sub(gradCmd),
    cl::sub(trainCmd));
cl::opt<bool> remarks(
    "remarks",
    cl::desc("With --stage=opt: for each value one kernel writes and another "
             "reads, print why they were not fused, at the value's source "
             "location"),
    cl::cat(kilnCategory), cl::sub(dumpCmd));
cl::opt<bool> stats("stats",
                    cl::desc("Print op counts per pass (and, for grad, the "
                             "compiled step's memory plan; for dump "
                             "--stage=opt, its kernels and peak bytes)"),
                    cl::cat(kilnCategory), cl::sub(optCmd), cl::sub(dumpCmd),
                    cl::sub(gradCmd), cl::sub(trainCmd));
cl::opt<bool> timePasses(
    "time-passes",
    cl::desc("Time each graph pass (and, for grad, each phase of LLVM "
             "compilation)"),
    cl::cat(kilnCategory), cl::sub(optCmd), cl::sub(dumpCmd), cl::sub(gradCmd),
    cl::sub(trainCmd));

// Code generation.
cl::opt<unsigned> threads("threads",
                          cl::desc("Threads for compiled code (0: all cores)"),
                          cl::value_desc("T"), cl::init(0),
                          cl::cat(kilnCategory), cl::sub(gradCmd),
                          cl::sub(trainCmd), cl::sub(evalCmd));
cl::opt<unsigned> vectorWidth(
    "vector-width",
    cl::desc("Vector width in bits for compiled loops and the GEMM: 128, "
             "256 or 512 (default: LLVM's choice for the CPU for loops, the "
             "CPU's widest for the GEMM)"),
    cl::value_desc("bits"), cl::init(0), cl::cat(kilnCategory),
    cl::sub(gradCmd), cl::sub(dumpCmd));
cl::opt<std::string>
    mcpu("mcpu",
         cl::desc("Compile for this x86-64 CPU, by LLVM's name (znver3, "
                  "skylake-avx512, x86-64-v3; default: this one)"),
         cl::value_desc("name"), cl::cat(kilnCategory), cl::sub(gradCmd),
         cl::sub(dumpCmd));
cl::opt<std::string>
    mattr("mattr",
          cl::desc("Add or remove CPU features: +avx512f,-fma (as llc)"),
          cl::value_desc("+a,-b"), cl::cat(kilnCategory), cl::sub(gradCmd),
          cl::sub(dumpCmd));

static const char *const stageNames[] = {"ast", "ir",   "grad",
                                         "opt", "llvm", "asm"};

llvm::StringRef stageName() { return stageNames[int(stage.getValue())]; }

PassOptions passOptions() {
  PassOptions opts;
  opts.printAfterAll = printAfterAll;
  opts.printAfter.assign(printAfter.begin(), printAfter.end());
  opts.printBefore.assign(printBefore.begin(), printBefore.end());
  opts.verifyEach = verifyEach;
  opts.stats = stats;
  opts.timePasses = timePasses;
  return opts;
}

static void printVersion(llvm::raw_ostream &os) {
  os << "kiln " << KILN_VERSION << "\n"
     << "  LLVM " << LLVM_VERSION_STRING << "\n"
     << "  default target " << llvm::sys::getDefaultTargetTriple()
     << ", host CPU " << llvm::sys::getHostCPUName() << "\n";
#ifndef NDEBUG
  os << "  with assertions\n";
#endif
}

/// Unregisters every option that is neither Kiln's nor cl's own (--help,
/// --version, ..., the options of every subcommand).
static void dropForeignOptions() {
  llvm::SmallPtrSet<cl::Option *, 32> foreign;
  for (cl::SubCommand *sub : cl::getRegisteredSubcommands())
    for (auto &kv : cl::getRegisteredOptions(*sub)) {
      cl::Option *o = kv.getValue();
      // cl's own category has no accessor; it is the one of this name.
      bool keep = llvm::any_of(o->Categories, [](cl::OptionCategory *c) {
        return c == &kilnCategory || c->getName() == "Generic Options";
      });
      if (!keep)
        foreign.insert(o);
    }
  for (cl::Option *o : foreign)
    o->removeArgument();
}

/// "--name" (or "-D"), as the user typed it.
static std::string flagName(const cl::Option &o) {
  return (o.ArgStr.size() == 1 ? "-" : "--") + o.ArgStr.str();
}

/// An error for a Kiln option given to a command it is not for (llvm::cl
/// would call it unknown, and take its value for a stray positional).
static llvm::Error checkOptionsBelong(llvm::ArrayRef<const char *> args) {
  if (args.size() < 2)
    return llvm::Error::success();
  cl::SubCommand *chosen = nullptr;
  for (cl::SubCommand *sub : cl::getRegisteredSubcommands())
    if (!sub->getName().empty() && sub->getName() == args[1])
      chosen = sub;
  if (!chosen)
    return llvm::Error::success();
  for (llvm::StringRef arg : args.drop_front(2)) {
    if (arg == "--")
      break;
    if (!arg.starts_with("-") || arg == "-")
      continue;
    llvm::StringRef name = arg.ltrim('-').split('=').first;
    // -DN=4: a prefix option, named by its first letter.
    bool single = !arg.starts_with("--");
    auto lookup = [&](cl::SubCommand &sub) -> cl::Option * {
      auto &opts = cl::getRegisteredOptions(sub);
      if (auto it = opts.find(name); it != opts.end())
        return it->second;
      auto it = opts.find(name.take_front(1));
      if (single && it != opts.end() &&
          it->second->getFormattingFlag() == cl::Prefix)
        return it->second;
      return nullptr;
    };
    if (lookup(*chosen))
      continue;
    std::vector<std::string> owners;
    const cl::Option *found = nullptr;
    for (cl::SubCommand *sub : cl::getRegisteredSubcommands())
      if (cl::Option *o = lookup(*sub);
          o && sub != chosen && !sub->getName().empty() &&
          llvm::is_contained(o->Categories, &kilnCategory)) {
        owners.push_back(sub->getName().str());
        found = o;
      }
    if (found) {
      llvm::sort(owners);
      return makeError(flagName(*found) + " applies to " +
                       llvm::join(owners, ", ") + ", not " + chosen->getName());
    }
  }
  return llvm::Error::success();
}

int prepareCommandLine(int argc, char **argv, std::vector<const char *> &args) {
  args.assign(argv, argv + argc);
  if (argc >= 2 && llvm::StringRef(argv[1]) == "help") {
    if (argc > 3)
      return fail("usage: kiln help [COMMAND]");
    args = {argv[0]};
    if (argc == 3) {
      llvm::StringRef name = argv[2];
      std::vector<std::string> names;
      bool known = false;
      for (cl::SubCommand *sub : cl::getRegisteredSubcommands())
        if (!sub->getName().empty()) {
          names.push_back(sub->getName().str());
          known |= sub->getName() == name;
        }
      llvm::sort(names);
      if (!known)
        return fail("unknown command '" + name +
                    "' (commands: " + llvm::join(names, ", ") + ")");
      if (name != "help")
        args.push_back(argv[2]);
    }
    args.push_back("--help");
  }
  dropForeignOptions();
  cl::SetVersionPrinter(printVersion);
  if (auto e = checkOptionsBelong(args))
    return fail(llvm::toString(std::move(e)));
  return -1;
}

/// An error naming the first of `opts` that was given, else success.
static llvm::Error refuse(std::initializer_list<const cl::Option *> opts,
                          const llvm::Twine &why) {
  for (const cl::Option *o : opts)
    if (o->getNumOccurrences())
      return makeError(flagName(*o) + " does not apply: " + why);
  return llvm::Error::success();
}

llvm::Error refusePassFlags(const llvm::Twine &why) {
  // cl::list's operator& gives its std::vector, hence std::addressof.
  return refuse({&printAfterAll, std::addressof(printAfter),
                 std::addressof(printBefore), &verifyEach, &stats, &timePasses,
                 std::addressof(wrt)},
                why);
}

/// --mcpu= and --mattr= with nothing after them.
static llvm::Error checkTargetFlags() {
  for (cl::opt<std::string> *o : {&mcpu, &mattr})
    if (o->getNumOccurrences() && o->getValue().empty())
      return makeError(flagName(*o) + " needs a value (" + o->ValueStr + ")");
  return llvm::Error::success();
}

llvm::Error checkDumpFlags() {
  if (mode != "train" && mode != "eval")
    return makeError("--mode must be 'train' or 'eval', not '" + mode + "'");
  if (auto e = checkTargetFlags())
    return e;
  std::initializer_list<const cl::Option *> codegen = {&vectorWidth, &mcpu,
                                                       &mattr};
  if (stage != Stage::Opt)
    if (auto e = refuse({&remarks}, "it explains the kernels of --stage=opt, "
                                    "not --stage=" +
                                        stageName()))
      return e;
  switch (stage) {
  case Stage::AST: {
    const char *why = "--stage=ast prints the file's syntax tree, before "
                      "any model is chosen or lowered";
    if (format == Format::Dot)
      return makeError("--format=dot is for graph stages (ir, grad, opt), "
                       "not --stage=ast");
    if (auto e = refuse({std::addressof(defines), &modelName, &mode}, why))
      return e;
    if (auto e = refusePassFlags(why))
      return e;
    return refuse(codegen, why);
  }
  case Stage::IR:
  case Stage::Grad:
  case Stage::Opt:
    return refuse(codegen, "it sets the code generation of --stage=llvm and "
                           "--stage=asm, not --stage=" +
                               stageName());
  case Stage::LLVM:
  case Stage::Asm:
    if (format == Format::Dot)
      return makeError("--format=dot is for graph stages (ir, grad, opt), "
                       "not --stage=" +
                       stageName());
    return llvm::Error::success();
  }
  return llvm::Error::success();
}

/// --threads beyond what any machine needs (it would only start threads
/// that wait): refused before any is started.
static llvm::Error checkThreads() {
  constexpr unsigned kMaxThreads = 1024;
  if (threads > kMaxThreads)
    return makeError("--threads must be at most " + llvm::Twine(kMaxThreads) +
                     " (0: all " + llvm::Twine(ThreadPool::hardwareThreads()) +
                     " cores), got " + llvm::Twine(threads));
  return llvm::Error::success();
}

/// Whether paths a and b name one regular file (existing or to be made):
/// `-` (standard input) and special files such as /dev/null, which many
/// streams may share, never do.
static bool sameFile(llvm::StringRef a, llvm::StringRef b) {
  if (a == "-" || b == "-")
    return false;
  llvm::sys::fs::file_status sa, sb;
  bool hasA = !llvm::sys::fs::status(a, sa),
       hasB = !llvm::sys::fs::status(b, sb);
  if ((hasA && !llvm::sys::fs::is_regular_file(sa)) ||
      (hasB && !llvm::sys::fs::is_regular_file(sb)))
    return false;
  if (hasA && hasB)
    return llvm::sys::fs::equivalent(sa, sb);
  // One is still to be written: the files their links lead to.
  auto ta = outputTarget(a), tb = outputTarget(b);
  if (!ta || !tb) {
    llvm::consumeError(ta.takeError());
    llvm::consumeError(tb.takeError());
    return false; // the write reports the loop
  }
  return *ta == *tb;
}

/// A file the command names: what names it (a flag, the model file, the
/// train block's data) and its path.
struct NamedFile {
  std::string what, path_;
  /// A flag's file; null: the model file.
  NamedFile(const cl::opt<std::string> *flag)
      : what(flag ? flagName(*flag) : "the model file"),
        path_(flag ? flag->getValue() : inputFile.getValue()),
        empty(flag && flag->getNumOccurrences() && path_.empty()) {}
  NamedFile(std::string what, std::string path)
      : what(std::move(what)), path_(std::move(path)) {}
  std::string describe() const { return what + " (" + path_ + ")"; }
  const std::string &path() const { return path_; }
  /// Given, as an empty string (`-o ""`).
  bool empty = false;
};

/// An error if an output names the same file as an input or as another
/// output: kiln would overwrite a file it reads, or one result with
/// another. Flags not given are left out.
static llvm::Error checkOutputs(llvm::ArrayRef<NamedFile> outputs,
                                llvm::ArrayRef<NamedFile> inputs) {
  auto given = [](const NamedFile &f) { return !f.path().empty(); };
  for (llvm::ArrayRef<NamedFile> files : {outputs, inputs})
    for (const NamedFile &f : files)
      if (f.empty)
        return makeError(f.what + ": an empty path names no file");
  for (size_t i = 0; i < outputs.size(); ++i) {
    const NamedFile &o = outputs[i];
    if (!given(o))
      continue;
    for (const NamedFile &in : inputs)
      if (given(in) && sameFile(o.path(), in.path()))
        return makeError(o.describe() + " names the same file as " +
                         in.describe() +
                         ": kiln would overwrite a file it "
                         "reads");
    for (size_t j = 0; j < i; ++j)
      if (given(outputs[j]) && sameFile(o.path(), outputs[j].path()))
        return makeError(outputs[j].describe() + " and " + o.describe() +
                         " name the same file: one would overwrite the "
                         "other");
  }
  return llvm::Error::success();
}

llvm::Error checkGradFlags() {
  if (auto e = checkOutputs({{&outputFile}},
                            {{nullptr}, {&paramsFile}, {&inputsFile}}))
    return e;
  if (paramsFile.empty() || inputsFile.empty())
    return makeError(
        "grad needs --params P.safetensors and --inputs I.safetensors");
  if (gradSamples.getNumOccurrences()) {
    if (!checkGrad)
      return makeError("--grad-samples applies only with --check-grad");
    if (gradSamples < 1)
      return makeError("--grad-samples must be at least 1");
  }
  if (auto e = checkThreads())
    return e;
  if (auto e = checkTargetFlags())
    return e;
  if (backend == Backend::Interp)
    return refuse({&threads, &vectorWidth, &mcpu, &mattr},
                  "it sets the compiled code of --backend=jit, and "
                  "--backend=interp compiles nothing");
  return llvm::Error::success();
}

llvm::Error checkTrainFlags() {
  if (epochs.getNumOccurrences() && epochs < 1)
    return makeError("--epochs must be at least 1");
  if (batch.getNumOccurrences() && batch < 1)
    return makeError("--batch must be at least 1");
  if (lr.getNumOccurrences() && !(lr > 0 && std::isfinite(lr)))
    return makeError("--lr must be a positive number");
  if (maxSteps.getNumOccurrences() && maxSteps < 1)
    return makeError("--steps must be at least 1");
  if (resume && checkpoint.empty())
    return makeError("--resume needs --checkpoint PATH");
  if (resume && !initFile.empty())
    return makeError("--resume continues from the checkpoint's values; "
                     "--init does not apply");
  if (kfold.getNumOccurrences()) {
    if (kfold < 2)
      return makeError("--kfold must be at least 2");
    if (auto e =
            refuse({&checkpoint, &resume, &metricsFile, &plotFile, &maxSteps},
                   "--kfold trains K models and reports their accuracy"))
      return e;
  }
  if (auto e = checkOutputs({{&checkpoint}, {&metricsFile}, {&plotFile}},
                            {{nullptr}, {&initFile}}))
    return e;
  if (auto e = checkThreads())
    return e;
  if (backend == Backend::Interp)
    return refuse({&threads}, "it sets the compiled code of --backend=jit");
  return llvm::Error::success();
}

llvm::Error checkTrainOutputs(const DataSource &data) {
  std::vector<NamedFile> inputs;
  for (const std::string *p : {&data.images, &data.labels, &data.testImages,
                               &data.testLabels, &data.path, &data.test})
    inputs.emplace_back("the train block's data", *p);
  return checkOutputs({{&checkpoint}, {&metricsFile}, {&plotFile}}, inputs);
}

llvm::Error checkEvalFlags() {
  if (checkpoint.empty())
    return makeError("eval needs --checkpoint PATH");
  if (auto e = checkThreads())
    return e;
  if (backend == Backend::Interp)
    return refuse({&threads}, "it sets the compiled code of --backend=jit");
  return llvm::Error::success();
}

llvm::Error checkInitFlags() {
  if (auto e = checkOutputs({{&outputFile}, {&inputsFile}}, {{nullptr}}))
    return e;
  if (inputsFile.empty())
    return refuse({&intMax}, "it bounds the random inputs that --inputs "
                             "writes, and there is no --inputs");
  if (intMax < 1)
    return makeError("--int-max must be at least 1");
  return llvm::Error::success();
}

} // namespace kiln::flags
