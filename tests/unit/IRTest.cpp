//===- IRTest.cpp - Graph construction, printing, parsing, passes ---------===//
//
// The printer's numbering is stable and its output parses back to the same
// text; the parser and verifier refuse ill-typed graphs; CSE and DCE do what
// they say.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/Passes.h"
#include <gtest/gtest.h>

using namespace kiln;

namespace {

std::string print(const Graph &g) {
  std::string s;
  llvm::raw_string_ostream os(s);
  printGraph(g, os);
  return s;
}

const char *kSample = R"(graph @sample {
  %x = input {name = "x"} : f32[2,3] loc("m.kiln":1:2)
  %w = param {init = "normal", mean = 0.0, name = "w", std = 0.5} : f32[3,4]
  %m = matmul %x, %w : f32[2,4] loc("m.kiln":3:9)
  %c = constant {value = -1.5e-07} : f32[]
  %cb = broadcast %c {shape = [2,4]} : f32[2,4]
  %s = add %m, %cb : f32[2,4]
  %l = mean %s {axes = [], keepdims = 0} : f32[]
  minimize %l
  return %s
}
)";

TEST(IR, PrintsWithStableNumberingAndRoundTrips) {
  test::Source src(kSample);
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g) << src.errors;
  std::string once = print(*g);
  EXPECT_NE(once.find("  %2 = matmul %0, %1 : f32[2,4] loc(\"m.kiln\":3:9)\n"),
            std::string::npos)
      << once;
  EXPECT_NE(once.find("{value = -1.5e-07}"), std::string::npos) << once;
  test::Source again(once);
  auto g2 = test::parseGraph(again);
  ASSERT_TRUE(g2) << again.errors;
  EXPECT_EQ(print(*g2), once);
  EXPECT_FALSE(bool(verifyGraph(*g2)));
}

TEST(IR, FloatsRoundTripExactly) {
  for (double v : {0.1, 1e-5, 1.0 / 3, 123456789.125, -0.0, 1e300, 5e-324}) {
    std::string s = formatFloat(v);
    EXPECT_TRUE(s.find_first_of(".e") != std::string::npos) << s;
    EXPECT_EQ(std::strtod(s.c_str(), nullptr), v) << s;
  }
  EXPECT_EQ(formatFloat(10), "10.0");
}

TEST(IR, ParserRefusesADeclaredTypeThatDisagrees) {
  test::Source src("graph @g {\n  %0 = input {name = \"x\"} : f32[2,3]\n"
                   "  %1 = relu %0 : f32[3,2]\n}\n");
  EXPECT_FALSE(test::parseGraph(src));
  EXPECT_NE(src.errors.find("test:3:18: error: declared type f32[3,2] does not "
                            "match the inferred type f32[2,3]"),
            std::string::npos)
      << src.errors;
}

TEST(IR, ParserReportsSeveralErrors) {
  test::Source src("graph @g {\n  %0 = frobnicate : f32[2]\n"
                   "  %1 = relu %9 : f32[2]\n  minimize %0\n}\n");
  EXPECT_FALSE(test::parseGraph(src));
  EXPECT_NE(src.errors.find("unknown op 'frobnicate'"), std::string::npos);
  EXPECT_NE(src.errors.find("use of undefined value '%9'"), std::string::npos);
  // The failed definition of %0 does not cascade into its use.
  EXPECT_EQ(src.diags.errorCount(), 2u) << src.errors;
}

TEST(IR, VerifierCatchesABrokenGraph) {
  test::Source src(kSample);
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g);
  g->nodes[2]->type.shape = {4, 2}; // the matmul now lies about its type
  std::swap(g->nodes[0], g->nodes[1]);
  auto err = verifyGraph(*g);
  ASSERT_TRUE(bool(err));
  std::string msg = llvm::toString(std::move(err));
  EXPECT_NE(msg.find("%2 (m.kiln:3:9): type f32[4,2] does not match the "
                     "inferred f32[2,4]"),
            std::string::npos)
      << msg;
}

TEST(Passes, CSEMergesAndDCERemoves) {
  test::Source src(R"(graph @g {
  %x = input {name = "x"} : f32[2]
  %a = exp %x : f32[2]
  %b = exp %x : f32[2]
  %c = add %a, %b : f32[2]
  %dead = tanh %x : f32[2]
  %unused = param {init = "zeros", name = "p"} : f32[2]
  return %c
}
)");
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g) << src.errors;
  EXPECT_TRUE(runCSE(*g));
  EXPECT_EQ(g->nodes.size(), 5u);
  EXPECT_EQ(g->output->operands[0], g->output->operands[1]);
  EXPECT_FALSE(runCSE(*g));
  EXPECT_TRUE(runDCE(*g));
  EXPECT_EQ(g->nodes.size(), 4u); // tanh is gone; the unused param stays
  EXPECT_TRUE(g->findLeaf(Op::Param, "p"));
  EXPECT_FALSE(runDCE(*g));
}

TEST(Passes, PipelineRefusesUnknownPasses) {
  Graph g;
  auto err = runPipeline(g, "cse,frob", {}, llvm::nulls());
  ASSERT_TRUE(bool(err));
  EXPECT_EQ(llvm::toString(std::move(err)),
            "unknown pass 'frob' (known passes: autodiff, simplify, dce, cse, "
            "fuse-elementwise, fuse-rows, fuse-epilogues, mix-targets, "
            "optimizer, drop-gradients)");
  PassOptions printing;
  printing.printBefore = {"frob"};
  EXPECT_EQ(llvm::toString(runPipeline(g, "", printing, llvm::nulls())),
            "--print-before names unknown pass 'frob' (known passes: "
            "autodiff, simplify, dce, cse, fuse-elementwise, fuse-rows, "
            "fuse-epilogues, mix-targets, optimizer, drop-gradients)");
}

TEST(Passes, OptionsAreCheckedWherePassesTakeThem) {
  auto steps = parsePipeline("cse, optimizer<kind=sgd,momentum=0.9>,dce");
  ASSERT_TRUE(bool(steps)) << llvm::toString(steps.takeError());
  ASSERT_EQ(steps->size(), 3u);
  EXPECT_EQ((*steps)[1].name, "optimizer");
  auto expectError = [](llvm::StringRef pipeline, llvm::StringRef message) {
    auto s = parsePipeline(pipeline);
    ASSERT_FALSE(bool(s)) << pipeline.str();
    EXPECT_EQ(llvm::toString(s.takeError()), message.str());
  };
  expectError("cse<x=1>", "pass 'cse' takes no options");
  expectError("optimizer<kind=sgd", "unclosed '<' in pipeline "
                                    "'optimizer<kind=sgd'");
  expectError("optimizer<kind=sgd,kind=adam>",
              "pass 'optimizer': option 'kind' is given twice");
  expectError("optimizer<momentum>",
              "pass 'optimizer': expected key=value, got 'momentum'");
  // Options a pass does not read, and bad values, fail when it runs.
  test::Source src("graph @t {\n  %w = param {init = \"zeros\", name = \"w\"} "
                   ": f32[2]\n  %s = sum %w {axes = [], keepdims = 0} : "
                   "f32[]\n  minimize %s\n}\n");
  auto parsed = test::parseGraph(src);
  ASSERT_TRUE(parsed);
  Graph &g = *parsed;
  ASSERT_FALSE(bool(runPipeline(g, "autodiff", {}, llvm::nulls())));
  auto run = [&](llvm::StringRef pipeline) {
    return llvm::toString(runPipeline(g, pipeline, {}, llvm::nulls()));
  };
  EXPECT_EQ(run("optimizer<kind=sgd,momentun=0.9>"),
            "pass 'optimizer' has no option 'momentun'");
  EXPECT_EQ(run("optimizer<kind=adamax>"),
            "pass 'optimizer': unknown kind 'adamax' (kinds: sgd, adagrad, "
            "adadelta, rmsprop, adam, adamw)");
  EXPECT_EQ(run("optimizer<kind=sgd,momentum=fast>"),
            "pass 'optimizer': option 'momentum' must be a finite number, "
            "got 'fast'");
  EXPECT_EQ(run("optimizer<kind=sgd,lr=0.1>").substr(0, 39),
            "pass 'optimizer': lr is not an option b");
  // The train block's rules hold for the options too.
  EXPECT_EQ(run("optimizer<kind=adam,beta1=2>"),
            "pass 'optimizer': 'beta1' of adam must be below 1");
  EXPECT_EQ(run("optimizer<kind=sgd,momentum=-1>"),
            "pass 'optimizer': 'momentum' of sgd must be a finite number >= 0");
  EXPECT_EQ(run("optimizer<kind=sgd,nesterov=true>"),
            "pass 'optimizer': Nesterov momentum needs momentum > 0 and zero "
            "dampening");
  EXPECT_EQ(run("optimizer<kind=sgd,nesterov=maybe>"),
            "pass 'optimizer': option 'nesterov' must be true or false, got "
            "'maybe'");
  // A good run adds the state, the scalar input and the updates.
  ASSERT_FALSE(bool(
      runPipeline(g, "optimizer<kind=sgd,momentum=0.9>", {}, llvm::nulls())));
  EXPECT_NE(g.findLeaf(Op::State, "w.momentum_buffer"), nullptr);
  EXPECT_NE(g.findLeaf(Op::Input, "optimizer.lr"), nullptr);
  ASSERT_EQ(g.updates.size(), 2u);
  EXPECT_EQ(g.updates[0].name, "w.momentum_buffer");
  EXPECT_EQ(g.updates[1].name, "w");
  EXPECT_EQ(run("optimizer<kind=sgd>"),
            "pass 'optimizer': parameter 'w' is already updated");
}

TEST(Passes, VerifyEachNamesThePassThatBrokeTheGraph) {
  test::Source src("graph @t {\n  %a = input {name = \"a\"} : f32[2]\n"
                   "  %b = neg %a : f32[2]\n  return %b\n}\n");
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g) << src.errors;
  std::vector<PipelineStep> steps{
      {"break",
       [](Graph &g) -> llvm::Expected<bool> {
         g.nodes[1]->type.shape = {3}; // neg of f32[2] typed f32[3]
         return true;
       }},
      {"nothing", [](Graph &) -> llvm::Expected<bool> { return false; }}};
  PassOptions each;
  each.verifyEach = true;
  std::string named = llvm::toString(runPasses(*g, steps, each, llvm::nulls()));
  EXPECT_NE(named.find("invalid after pass 'break'"), std::string::npos)
      << named;
  // Without --verify-each, the graph is checked once, after the pipeline
  // (or still after each pass where assertions are on).
  std::string once = llvm::toString(runPasses(*g, steps, {}, llvm::nulls()));
#ifdef NDEBUG
  EXPECT_NE(once.find("invalid after the passes (--verify-each names the "
                      "pass that broke it)"),
            std::string::npos)
      << once;
#else
  EXPECT_NE(once.find("invalid after pass 'break'"), std::string::npos) << once;
#endif
  // A step's own error stops the pipeline.
  std::vector<PipelineStep> failing{
      {"fails", [](Graph &) -> llvm::Expected<bool> {
         return makeError("no objective");
       }}};
  EXPECT_EQ(llvm::toString(runPasses(*g, failing, {}, llvm::nulls())),
            "no objective");
}

} // namespace
