//===- GradCheckTest.cpp - Gradients of models; the checker's kinks ------===//
//
// Composed models (the MLP, SVM and CNN of models/, a residual block with
// batch norm, shared weights in an unrolled loop) differentiated and checked
// against float64 central differences; then the checker itself next to
// kinks of piecewise ops, where a central difference straddles two pieces.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"
#include "passes/Autodiff.h"
#include "runtime/Gradients.h"
#include "runtime/Interpreter.h"
#include "llvm/Support/MemoryBuffer.h"
#include <cmath>
#include <gtest/gtest.h>
#include <random>

using namespace kiln;

namespace {

/// Lowers a model source, differentiates it and checks every parameter.
void checkModelSource(const std::string &text, llvm::StringMap<int64_t> dims,
                      double tol = 1e-4) {
  test::Source fwdSrc(text), trainSrc(text);
  auto forward = test::lowerSource(fwdSrc, dims);
  auto training = test::lowerSource(trainSrc, dims);
  ASSERT_TRUE(forward && training) << fwdSrc.errors;
  ASSERT_FALSE(bool(differentiate(*training)));
  TensorMap params = initialParams(*forward, 7), inputs;
  std::mt19937_64 rng(3);
  for (Node *in : forward->leaves(Op::Input)) {
    std::vector<double> v(*numElements(in->type.shape));
    for (double &x : v)
      x = in->type.dtype == DType::I32 ? double(rng() % 3)
                                       : double(rng() % 1000) / 1000.0;
    inputs[in->stringAttr("name")] =
        Tensor::fromValues(in->type.dtype, in->type.shape, v);
  }
  auto leaves = bindLeaves(*forward, params, inputs);
  ASSERT_TRUE(bool(leaves)) << llvm::toString(leaves.takeError());
  auto grads = evaluateGradients(*training, *leaves, DType::F64);
  ASSERT_TRUE(bool(grads)) << llvm::toString(grads.takeError());
  auto checks =
      checkGradients(*training, *grads, *leaves, {/*samples=*/12, tol});
  ASSERT_TRUE(bool(checks)) << llvm::toString(checks.takeError());
  EXPECT_EQ(checks->size(), forward->leaves(Op::Param).size());
  for (const GradCheck &c : *checks) {
    EXPECT_LT(c.worst, tol) << c.name;
    EXPECT_GT(c.checked, 0) << c.name;
  }
}

std::string modelFile(const char *name) {
  auto buf = llvm::MemoryBuffer::getFile(std::string(KILN_SOURCE_DIR) +
                                         "/models/" + name + ".kiln");
  return buf ? (*buf)->getBuffer().str() : "";
}

TEST(ModelGradients, MLP) { checkModelSource(modelFile("mlp"), {{"N", 3}}); }
TEST(ModelGradients, SVM) { checkModelSource(modelFile("svm"), {{"N", 3}}); }
TEST(ModelGradients, CNN) { checkModelSource(modelFile("cnn"), {{"N", 2}}); }

TEST(ModelGradients, ResidualBlockWithBatchNorm) {
  checkModelSource(R"(
layer bn(x: f32[N, C, H, W]) {
    param gamma: f32[C] = uniform(0.5, 1.5)
    param beta: f32[C] = normal(std = 0.1)
    return batch_norm(x, gamma, beta)
}
layer conv(x: f32[N, C, H, W], out: int) {
    param w: f32[out, C, 3, 3] = he_normal()
    return conv2d(x, w, pad = 1)
}
model res(x: f32[N, 2, 5, 5], y: i32[N]) {
    let conv1 = conv(x, 2)
    let bn1 = bn(conv1)
    let conv2 = conv(relu(bn1), 2)
    let bn2 = bn(conv2)
    let out = relu(bn2 + x)
    param w: f32[50, 3] = xavier_normal()
    minimize cross_entropy(flatten(out) @ w, y)
}
)",
                   {{"N", 3}});
}

TEST(ModelGradients, SharedWeightsInAFourStepLoop) {
  std::string rnn = R"(
layer cell(h: f32[N, D], x: f32[N, D]) {
    param wh: f32[D, D] = xavier_uniform()
    param wx: f32[D, D] = xavier_uniform()
    return tanh(h @ wh + x @ wx)
}
model rnn(x: f32[N, 4, 3], y: f32[N, 3]) {
    let h = x[:, 0, :]
    for t in 0..4 {
        let h = cell(h, x[:, t, :])       # the same cell.wh, cell.wx each step
    }
    minimize mse(h, y) + 0.01 * sum(cell.wh * cell.wh)
}
)";
  // `cell.wh` is not a name in the model: use the loop-free form below.
  rnn.replace(rnn.find("0.01 * sum(cell.wh * cell.wh)"), 29, "0.0");
  checkModelSource(rnn, {{"N", 2}});
  test::Source src(rnn);
  auto g = test::lowerSource(src, {{"N", 2}});
  ASSERT_TRUE(g);
  EXPECT_EQ(g->leaves(Op::Param).size(), 2u); // shared across the 4 steps
}

/// A sum of an elementwise op at x = {0, 1e-7, -1, 2} (kinks of relu at 0
/// and within h = 1e-6 of it), differentiated, with the interpreter's
/// gradients.
struct KinkCase {
  std::unique_ptr<Graph> training;
  llvm::StringMap<Tensor> leaves;
  TensorMap grads;
};

/// The graph of sum(OP(x)) for x: f32[4].
std::string sumOf(llvm::StringRef op) {
  return ("graph @t {\n  %x = input {name = \"x\"} : f32[4]\n  %r = " + op +
          " %x : f32[4]\n  %s = sum %r {axes = [], keepdims = 0} : f32[]\n"
          "  minimize %s\n}\n")
      .str();
}

KinkCase atKinks(test::Source &src) {
  KinkCase k;
  k.training = test::parseGraph(src);
  if (!k.training)
    return k;
  EXPECT_FALSE(bool(differentiate(*k.training, {"x"})));
  k.leaves["x"] = Tensor::fromValues(DType::F64, {4}, {0, 1e-7, -1, 2});
  k.grads = llvm::cantFail(evaluateGradients(*k.training, k.leaves));
  return k;
}

TEST(GradCheck, NextToAKinkTheGradientIsCheckedOneSided) {
  test::Source src(sumOf("relu"));
  KinkCase k = atKinks(src);
  ASSERT_TRUE(k.training) << src.errors;
  auto checks = checkGradients(*k.training, k.grads, k.leaves);
  ASSERT_TRUE(bool(checks)) << llvm::toString(checks.takeError());
  ASSERT_EQ(checks->size(), 1u);
  // At x = 0 the central difference is 0.5 and relu'(0) = 0, the left
  // derivative; at x = 1e-7 (the kink within h = 1e-6) it is 0.55 and the
  // right derivative is 1. Both are right, one-sided; -1 and 2 centrally.
  EXPECT_EQ((*checks)[0].checked, 4);
  EXPECT_EQ((*checks)[0].oneSided, 2);
  EXPECT_EQ((*checks)[0].kinks, 0);
  // float64 rounding (1e-10) over the error's floor (1e-4).
  EXPECT_LT((*checks)[0].worst, 1e-5);
  EXPECT_TRUE((*checks)[0].passed({}));

  // A wrong gradient at a smooth point fails, by its own error.
  k.grads["x"].data<float>()[3] *= 1.01f;
  checks = checkGradients(*k.training, k.grads, k.leaves);
  ASSERT_TRUE(bool(checks));
  EXPECT_NEAR((*checks)[0].worst, 0.01 / 1.01, 1e-6);
  EXPECT_FALSE((*checks)[0].passed({}));
  // So does one at the kink that is neither side's derivative (nor the
  // central difference 0.5, the mean of the two).
  k.grads["x"].data<float>()[3] /= 1.01f;
  k.grads["x"].data<float>()[0] = 0.8f;
  checks = checkGradients(*k.training, k.grads, k.leaves);
  ASSERT_TRUE(bool(checks));
  EXPECT_NEAR((*checks)[0].worst, 0.2, 1e-6); // |0.8 - 1| / 1, the nearer
  EXPECT_FALSE((*checks)[0].passed({}));
}

/// sum of relu(x + c) over `offsets`, for x: f32[1], differentiated, with
/// x = 0 and the interpreter's gradient.
KinkCase reluKinksAt(test::Source &src) {
  KinkCase k;
  k.training = test::parseGraph(src);
  if (!k.training)
    return k;
  EXPECT_FALSE(bool(differentiate(*k.training, {"x"})));
  k.leaves["x"] = Tensor::fromValues(DType::F64, {1}, {0});
  k.grads = llvm::cantFail(evaluateGradients(*k.training, k.leaves));
  return k;
}

std::string reluSum(llvm::ArrayRef<double> offsets) {
  std::string text = "graph @t {\n  %x = input {name = \"x\"} : f32[1]\n";
  std::string sum;
  for (size_t i = 0; i < offsets.size(); ++i) {
    std::string n = std::to_string(i);
    char value[32];
    std::snprintf(value, sizeof value, "%.17g", offsets[i]);
    text += "  %c" + n + " = constant {value = " + value + "} : f32[1]\n" +
            "  %a" + n + " = add %x, %c" + n + " : f32[1]\n" + "  %r" + n +
            " = relu %a" + n + " : f32[1]\n";
    if (i == 0) {
      sum = "%r0";
    } else {
      text += "  %s" + n + " = add " + sum + ", %r" + n + " : f32[1]\n";
      sum = "%s" + n;
    }
  }
  return text + "  %l = sum " + sum +
         " {axes = [], keepdims = 0} : f32[]\n  minimize %l\n}\n";
}

/// At x = 0 with kinks at `offsets` that leave no side on x's piece: the
/// right gradient matches the central difference, and a wrong one cannot
/// be compared, so it is left out and the tensor does not pass.
void expectWrongGradientLeftOut(llvm::ArrayRef<double> offsets, double right,
                                float wrong) {
  test::Source src(reluSum(offsets));
  KinkCase k = reluKinksAt(src);
  ASSERT_TRUE(k.training) << src.errors;
  EXPECT_EQ(k.grads["x"].at(0), right);
  auto good = checkGradients(*k.training, k.grads, k.leaves);
  ASSERT_TRUE(bool(good)) << llvm::toString(good.takeError());
  EXPECT_EQ((*good)[0].checked, 1);
  EXPECT_TRUE((*good)[0].passed({}));
  k.grads["x"].data<float>()[0] = wrong;
  auto bad = checkGradients(*k.training, k.grads, k.leaves);
  ASSERT_TRUE(bool(bad)) << llvm::toString(bad.takeError());
  EXPECT_EQ((*bad)[0].kinks, 1);
  EXPECT_EQ((*bad)[0].checked, 0);
  EXPECT_FALSE((*bad)[0].passed({}));
}

TEST(GradCheck, APieceNarrowerThanEveryStepIsNotComparedWithItsNeighbours) {
  // relu(x + 1e-7) + relu(x - 1e-7): x's piece is narrower than even h / 8,
  // so only its neighbours' derivatives (2 and 0) are seen. The gradient, 1,
  // matches the central difference (0.55 + 0.45); 1.5 is not compared with
  // a neighbour.
  expectWrongGradientLeftOut({1e-7, -1e-7}, 1.0, 1.5f);
}

TEST(GradCheck, WithKinksWithinEveryStepTheElementIsLeftOut) {
  // Kinks at +-1.5e-6 and +-1.9e-7 cut every side's points at h and h / 8.
  expectWrongGradientLeftOut({1.5e-6, -1.5e-6, 1.9e-7, -1.9e-7}, 2.0, 2.5f);
}

TEST(GradCheck, WithKinksOnBothSidesAShorterStepFindsThePiece) {
  // relu(x) + relu(x + 2e-6) + relu(x - 2e-6) at x = 0: kinks at x and 2h
  // away on either side. The central difference (1.5) is not the gradient
  // (1); at h / 8 the left side lies on x's piece.
  test::Source src(reluSum({0, 2e-6, -2e-6}));
  KinkCase k = reluKinksAt(src);
  ASSERT_TRUE(k.training) << src.errors;
  EXPECT_EQ(k.grads["x"].at(0), 1.0);
  auto checks = checkGradients(*k.training, k.grads, k.leaves);
  ASSERT_TRUE(bool(checks)) << llvm::toString(checks.takeError());
  EXPECT_EQ((*checks)[0].kinks, 0);
  EXPECT_EQ((*checks)[0].oneSided, 1);
  EXPECT_LT((*checks)[0].worst, 1e-5);
  EXPECT_TRUE((*checks)[0].passed({}));
}

TEST(GradCheck, ASmoothObjectiveHasNoKinks) {
  // gelu has no kink: x = 0 is compared like any point.
  test::Source src(sumOf("gelu"));
  KinkCase k = atKinks(src);
  ASSERT_TRUE(k.training) << src.errors;
  k.grads["x"].data<float>()[0] += 0.01f; // gelu'(0) = 0.5
  auto checks = checkGradients(*k.training, k.grads, k.leaves);
  ASSERT_TRUE(bool(checks)) << llvm::toString(checks.takeError());
  EXPECT_EQ((*checks)[0].kinks, 0);
  EXPECT_EQ((*checks)[0].checked, 4);
  EXPECT_NEAR((*checks)[0].worst, 0.01 / 0.51, 1e-6);
}

TEST(GradCheck, ANaNGradientFailsWhereverItIs) {
  // One NaN among good elements, first or last: the worst error is NaN, and
  // the tensor does not pass.
  for (int at : {0, 3}) {
    test::Source src(sumOf("gelu"));
    KinkCase k = atKinks(src);
    ASSERT_TRUE(k.training) << src.errors;
    k.grads["x"].data<float>()[at] = NAN;
    GradCheckOptions opts;
    auto checks = checkGradients(*k.training, k.grads, k.leaves, opts);
    ASSERT_TRUE(bool(checks)) << llvm::toString(checks.takeError());
    EXPECT_TRUE(std::isnan((*checks)[0].worst)) << "NaN at " << at;
    EXPECT_FALSE((*checks)[0].passed(opts)) << "NaN at " << at;
  }
}

} // namespace
