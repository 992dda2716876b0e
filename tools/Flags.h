//===- Flags.h - The kiln driver's command line ------------------*- C++
//-*-===//
//
// Every subcommand and option of `kiln`, in Kiln's own option category, and
// the checks that refuse a flag where it does not apply (a flag silently
// ignored is a wrong answer the user cannot see).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TOOLS_FLAGS_H
#define KILN_TOOLS_FLAGS_H

#include "frontend/Train.h"
#include "passes/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/SourceMgr.h"
#include <string>
#include <vector>

namespace kiln {

namespace cl = llvm::cl;

/// Prints `kiln: error: MSG` and returns the exit code 1. A message that
/// names a place in a file of the sources set by setErrorSources
/// (`FILE:LINE:COL: ...`, as run-time errors do) prints as a compile-time
/// error does: that prefix, then the source line and a caret.
int fail(const llvm::Twine &msg);

/// The source files fail() shows lines of; null: none. The owner clears it
/// before the SourceMgr goes.
void setErrorSources(llvm::SourceMgr *sm);

namespace flags {

extern cl::SubCommand checkCmd, dumpCmd, optCmd, gradCmd, initCmd, trainCmd,
    evalCmd;

extern cl::opt<std::string> inputFile, modelName, paramsFile, inputsFile,
    outputFile, mode, passes, mcpu, mattr;
extern cl::list<std::string> defines, wrt;
extern cl::opt<bool> checkGrad, stats, timePasses, resume, shuffle,
    checkNumerics, remarks;
extern cl::opt<int64_t> epochs, batch, maxSteps, kfold, gradSamples;
extern cl::opt<double> lr;
extern cl::opt<std::string> checkpoint, metricsFile, plotFile, initFile;
extern cl::opt<uint64_t> seed;
extern cl::opt<int> intMax;
extern cl::opt<unsigned> threads, vectorWidth;

enum class Backend { JIT, Interp };
extern cl::opt<Backend> backend;
enum class Stage { AST, IR, Grad, Opt, LLVM, Asm };
extern cl::opt<Stage> stage;
enum class Format { Text, Dot };
extern cl::opt<Format> format;

/// The --stage value as written ("ir").
llvm::StringRef stageName();

/// The pass instrumentation that --print-after-all, --print-after,
/// --print-before, --verify-each, --stats and --time-passes ask for.
PassOptions passOptions();

/// Before anything is read: `kiln help [COMMAND]` becomes
/// `kiln [COMMAND] --help`, LLVM's own options are unregistered (so they are
/// neither listed nor accepted), and --version names Kiln and LLVM. Fills
/// `args` for cl::ParseCommandLineOptions and returns -1, or returns the
/// exit code after an error.
int prepareCommandLine(int argc, char **argv, std::vector<const char *> &args);

/// Errors for flags that do not apply to what `dump`, `grad` or `init` was
/// asked, checked before any file is read.
llvm::Error checkDumpFlags();
llvm::Error checkGradFlags();
llvm::Error checkInitFlags();
llvm::Error checkTrainFlags();
/// train's outputs against its train block's data files: none may be one.
llvm::Error checkTrainOutputs(const DataSource &data);
llvm::Error checkEvalFlags();

/// An error if a flag that needs graph passes was given where none run;
/// `why` says why none do.
llvm::Error refusePassFlags(const llvm::Twine &why);

} // namespace flags
} // namespace kiln

#endif
