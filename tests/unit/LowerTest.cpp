//===- LowerTest.cpp - Elaboration of models to graph IR ------------------===//
//
// Parameter naming and sharing, unification of dimension names, loop
// unrolling, train/eval modes and the diagnostics of lowering.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"
#include "frontend/Train.h"
#include "ir/Verifier.h"
#include <gtest/gtest.h>

using namespace kiln;

namespace {

std::vector<std::string> paramNames(const Graph &g) {
  std::vector<std::string> names;
  for (Node *p : g.leaves(Op::Param))
    names.push_back(p->stringAttr("name") + ":" + p->type.str());
  return names;
}

const char *kDense = "layer dense(x: f32[N, I], out: int) {\n"
                     "  param w: f32[I, out] = he_normal()\n"
                     "  param b: f32[out] = zeros()\n"
                     "  return x @ w + b\n}\n";

TEST(Lower, LetNamesParametersAndNestedCallsGetAutomaticNames) {
  test::Source src(std::string(kDense) +
                   "model m(x: f32[N, 8]) {\n"
                   "  let h = dense(relu(dense(x, 4)), 3)\n"
                   "  return dense(h, 2) + dense(h, 2)\n}\n");
  auto g = test::lowerSource(src, {{"N", 5}});
  ASSERT_TRUE(g) << src.errors;
  EXPECT_EQ(paramNames(*g),
            (std::vector<std::string>{
                "dense_0.w:f32[8,4]", "dense_0.b:f32[4]", "h.w:f32[4,3]",
                "h.b:f32[3]", "dense_1.w:f32[3,2]", "dense_1.b:f32[2]",
                "dense_2.w:f32[3,2]", "dense_2.b:f32[2]"}));
  EXPECT_EQ(g->output->type.str(), "f32[5,2]");
  EXPECT_FALSE(bool(verifyGraph(*g)));
}

TEST(Lower, RebindingANameInALoopSharesWeights) {
  test::Source src(std::string(kDense) +
                   "layer block(x: f32[N, D]) {\n  let fc = dense(x, D)\n  "
                   "return tanh(fc)\n}\n"
                   "model m(x: f32[N, T, 6]) {\n"
                   "  param wh: f32[6, 6] = xavier_uniform(gain = 2.0)\n"
                   "  let h = x[:, 0, :]\n"
                   "  for t in 1..T {\n"
                   "    let h = tanh(x[:, t, :] + h @ wh)\n"
                   "    let cell = block(h)\n"
                   "  }\n"
                   "  minimize mean(cell * h)\n  return h\n}\n");
  auto g = test::lowerSource(src, {{"N", 2}, {"T", 4}});
  ASSERT_TRUE(g) << src.errors;
  EXPECT_EQ(paramNames(*g),
            (std::vector<std::string>{"wh:f32[6,6]", "cell.fc.w:f32[6,6]",
                                      "cell.fc.b:f32[6]"}));
  Node *wh = g->findLeaf(Op::Param, "wh");
  EXPECT_EQ(wh->floatAttr("gain"), 2.0);
  int uses = 0, slices = 0;
  for (auto &n : g->nodes) {
    uses += llvm::count(n->operands, wh);
    slices += n->op == Op::Slice;
  }
  EXPECT_EQ(uses, 3);   // one matmul per unrolled step t = 1, 2, 3
  EXPECT_EQ(slices, 4); // x[:, 0, :] and one per step
}

TEST(Lower, UnificationChecksRepeatedDimensionNames) {
  test::Source src(
      "layer pair(a: f32[N, K], b: f32[K, M]) { return a @ b }\n"
      "model m(x: f32[4, 3], y: f32[2, 5]) { return pair(x, y) }\n");
  EXPECT_FALSE(test::lowerSource(src));
  EXPECT_NE(
      src.errors.find("shape mismatch: argument 'b' of 'pair' is f32[2,5], "
                      "but 'pair' expects f32[3,5]"),
      std::string::npos)
      << src.errors;
}

TEST(Lower, ShapeArithmeticAndIntegerDivision) {
  test::Source src(
      "layer f(x: f32[N, C], y: f32[N, C * 2], k: int) {\n"
      "  param w: f32[k / 2, C * 2 - 1 + 1] = ones()\n"
      "  return y @ transpose(w)\n}\n"
      "model m(x: f32[3, 4], y: f32[3, 8]) { return f(x, y, 7) }\n");
  auto g = test::lowerSource(src);
  ASSERT_TRUE(g) << src.errors;
  EXPECT_EQ(paramNames(*g), (std::vector<std::string>{"f_0.w:f32[3,8]"}));
}

TEST(Lower, EvalModeDropsStatisticUpdates) {
  const char *text = "model m(x: f32[4, 3]) {\n"
                     "  param g: f32[3] = ones()\n  param b: f32[3] = zeros()\n"
                     "  return dropout(batch_norm(x, g, b), p = 0.2)\n}\n";
  test::Source train(text), eval(text);
  auto gt = test::lowerSource(train, {}, true);
  auto ge = test::lowerSource(eval, {}, false);
  ASSERT_TRUE(gt && ge) << train.errors << eval.errors;
  ASSERT_EQ(gt->updates.size(), 2u);
  EXPECT_EQ(gt->updates[0].name, "g.running_mean");
  EXPECT_EQ(gt->updates[1].name, "g.running_var");
  EXPECT_TRUE(ge->updates.empty());
  EXPECT_EQ(ge->output->stringAttr("mode"), "eval");
  EXPECT_EQ(ge->output->operands[0]->stringAttr("mode"), "eval");
}

TEST(Lower, ReportsIndependentErrorsInOneRun) {
  test::Source src("model m(x: f32[4, 3]) {\n"
                   "  let a = x @ x\n"                // shape error
                   "  let b = relu(xx)\n"             // unknown name
                   "  let c = softmax(x, axes = 1)\n" // unknown keyword
                   "  return x\n}\n");
  EXPECT_FALSE(test::lowerSource(src));
  EXPECT_EQ(src.diags.errorCount(), 3u) << src.errors;
  EXPECT_NE(
      src.errors.find("test:2:13: error: cannot multiply f32[4,3] by f32[4,3]: "
                      "the inner dimensions differ"),
      std::string::npos)
      << src.errors;
  EXPECT_NE(src.errors.find("unknown name 'xx'; did you mean 'x'?"),
            std::string::npos);
  EXPECT_NE(src.errors.find("'softmax' has no argument 'axes'"),
            std::string::npos);
}

TEST(Lower, RecursionLoopLimitsAndOverflowAreErrors) {
  test::Source rec(
      "layer f(x: f32[2]) { return g(x) }\nlayer g(x: f32[2]) { return f(x) }\n"
      "model m(x: f32[2]) { return f(x) }\n");
  EXPECT_FALSE(test::lowerSource(rec));
  EXPECT_NE(rec.errors.find("'f' calls itself ('f' -> 'g' -> 'f')"),
            std::string::npos)
      << rec.errors;
  test::Source loop("model m(x: f32[2]) {\n  for t in 0..5000000 { let x = "
                    "relu(x) }\n  return x\n}\n");
  EXPECT_FALSE(test::lowerSource(loop));
  EXPECT_NE(loop.errors.find("this loop unrolls to 5000000 iterations; Kiln "
                             "unrolls at most 100000"),
            std::string::npos)
      << loop.errors;
  test::Source big("model m(x: f32[N, N, N]) { return x }\n");
  EXPECT_FALSE(test::lowerSource(big, {{"N", int64_t(1) << 30}}));
  EXPECT_NE(big.errors.find("more than 2^40 elements"), std::string::npos)
      << big.errors;
  test::Source ovf("model m(x: f32[2]) {\n  param w: f32[4294967296 * "
                   "4294967296] = zeros()\n  return x\n}\n");
  EXPECT_FALSE(test::lowerSource(ovf));
  EXPECT_NE(
      ovf.errors.find(
          "integer overflow: 4294967296 * 4294967296 does not fit in 64 bits"),
      std::string::npos)
      << ovf.errors;
}

TEST(Lower, UnboundModelDimensionIsAnError) {
  test::Source src("model m(x: f32[N, 3]) { return x }\n");
  EXPECT_FALSE(test::lowerSource(src));
  EXPECT_NE(
      src.errors.find("dimension 'N' of model 'm' is not bound; give -D N=..."),
      std::string::npos)
      << src.errors;
}

TEST(Train, SettingsAreCheckedWithPyTorchDefaults) {
  test::Source src(
      "model m(x: f32[N, 784], y: i32[N]) { minimize mean(x) }\n"
      "train m {\n  data = fashion_mnist(dir = \"/tmp/f\")\n  batch = 32\n"
      "  optimizer = adam(lr = 0.01)\n}\n");
  Module mod = parseModule(src.id, src.diags);
  auto configs = checkTrainBlocks(mod, src.diags);
  ASSERT_EQ(configs.size(), 1u) << src.errors;
  const TrainConfig &c = configs[0];
  EXPECT_EQ(c.batch, 32);
  EXPECT_EQ(c.epochs, 1);
  EXPECT_EQ(c.data.dir, "/tmp/f");
  EXPECT_EQ(c.optimizer.kind, "adam");
  EXPECT_EQ(c.optimizer.args.at("lr"), 0.01);
  EXPECT_EQ(c.optimizer.args.at("beta2"), 0.999);
  EXPECT_EQ(c.optimizer.args.at("eps"), 1e-8);
}

TEST(Train, BadSettingsAreLocatedErrors) {
  test::Source src("model m(x: f32[N, 784], y: i32[N]) { return x }\n"
                   "train m {\n  data = fashion_mnist()\n  bach = 32\n"
                   "  optimizer = sgd(momentum = 0.9)\n  epochs = 0\n}\n");
  Module mod = parseModule(src.id, src.diags);
  EXPECT_TRUE(checkTrainBlocks(mod, src.diags).empty());
  EXPECT_NE(src.errors.find("test:4:3: error: unknown train setting 'bach'; "
                            "did you mean 'batch'?"),
            std::string::npos)
      << src.errors;
  EXPECT_NE(src.errors.find("sgd needs 'lr'"), std::string::npos) << src.errors;
  EXPECT_NE(src.errors.find("'epochs' must be an integer of at least 1"),
            std::string::npos);
  EXPECT_NE(src.errors.find("needs 'batch'"), std::string::npos);
}

} // namespace
