//===- GradTest.cpp - Gradients against float64 finite differences --------===//
//
// For every differentiable op: a one-op graph with random inputs (odd
// shapes, broadcasting, strides), objective sum(op(...) * r) for a random r,
// differentiated with respect to every float input and compared with
// float64 central differences. The table test fails if an op has no
// gradient rule, or neither a check here nor a place in the short list of
// ops whose gradient is zero by definition. Then fan-out, stopped and
// tied gradients, Hessian-vector products and extreme logits; composed
// models and the checker's kinks are in GradCheckTest.cpp.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"
#include "ir/OpRules.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/Autodiff.h"
#include "passes/Passes.h"
#include "runtime/Gradients.h"
#include "runtime/Interpreter.h"
#include <gtest/gtest.h>
#include <random>
#include <set>

using namespace kiln;

namespace {

struct Input {
  std::string name;
  Shape shape;
  double lo = -1, hi = 1; ///< uniform range; |x| >= 0.1 when lo < 0 < hi
  std::vector<int> ints;  ///< i32 input values instead
};

struct GradCase {
  Op op;
  std::vector<Input> inputs;
  std::string body; ///< defines %out from the inputs %<name>
  std::string outType;
};

std::string typeOf(const Input &in) {
  return (in.ints.empty() ? "f32" : "i32") + shapeStr(in.shape);
}

Input f(const char *name, Shape shape, double lo = -1, double hi = 1) {
  return {name, shape, lo, hi, {}};
}
Input ids(const char *name, Shape shape, std::vector<int> v) {
  return {name, shape, 0, 0, v};
}

std::vector<GradCase> gradCases() {
  auto unary = [](Op op, const char *mn, const char *attrs = "", double lo = -1,
                  double hi = 1) {
    return GradCase{op,
                    {f("a", {3, 5}, lo, hi)},
                    std::string("%out = ") + mn + " %a" + attrs + " : f32[3,5]",
                    "f32[3,5]"};
  };
  auto binary = [](Op op, const char *mn, double lo = -1, double hi = 1) {
    return GradCase{op,
                    {f("a", {3, 5}, lo, hi), f("b", {3, 5}, lo, hi)},
                    std::string("%out = ") + mn + " %a, %b : f32[3,5]",
                    "f32[3,5]"};
  };
  return {
      unary(Op::Neg, "neg"),
      unary(Op::Exp, "exp"),
      unary(Op::Log, "log", "", 0.2, 3),
      unary(Op::Sqrt, "sqrt", "", 0.2, 3),
      unary(Op::Abs, "abs"),
      unary(Op::Tanh, "tanh"),
      unary(Op::Sigmoid, "sigmoid"),
      unary(Op::Relu, "relu"),
      unary(Op::LeakyRelu, "leaky_relu", " {slope = 0.1}"),
      unary(Op::Elu, "elu", " {alpha = 1.5}"),
      unary(Op::Gelu, "gelu", "", -3, 3),
      unary(Op::Softplus, "softplus", "", -3, 3),
      unary(Op::Erf, "erf"),
      binary(Op::Add, "add"),
      binary(Op::Sub, "sub"),
      binary(Op::Mul, "mul"),
      binary(Op::Div, "div"),
      binary(Op::Pow, "pow", 0.3, 2),
      binary(Op::Maximum, "maximum"),
      binary(Op::Minimum, "minimum"),
      {Op::Broadcast,
       {f("a", {3, 1})},
       "%out = broadcast %a {shape = [2,3,4]} : f32[2,3,4]",
       "f32[2,3,4]"},
      {Op::Reshape,
       {f("a", {3, 5})},
       "%out = reshape %a {shape = [5,3]} : f32[5,3]",
       "f32[5,3]"},
      {Op::Transpose,
       {f("a", {2, 3, 4})},
       "%out = transpose %a {perm = [2,0,1]} : f32[4,2,3]",
       "f32[4,2,3]"},
      {Op::Slice,
       {f("a", {5, 7})},
       "%out = slice %a {begin = [1,0], end = [5,7], step = [2,3]} : f32[2,3]",
       "f32[2,3]"},
      {Op::Pad,
       {f("a", {2, 3})},
       "%out = pad %a {high = [0,2], interior = [1,0], low = [1,1]} : f32[4,6]",
       "f32[4,6]"},
      {Op::Concat,
       {f("a", {2, 1}), f("b", {2, 3}), f("c", {2, 2})},
       "%out = concat %a, %b, %c {axis = 1} : f32[2,6]",
       "f32[2,6]"},
      {Op::Sum,
       {f("a", {3, 4, 5})},
       "%out = sum %a {axes = [1], keepdims = 0} : f32[3,5]",
       "f32[3,5]"},
      {Op::Mean,
       {f("a", {3, 4, 5})},
       "%out = mean %a {axes = [0,2], keepdims = 1} : f32[1,4,1]",
       "f32[1,4,1]"},
      {Op::Max,
       {f("a", {3, 4, 5})},
       "%out = max %a {axes = [-1], keepdims = 0} : f32[3,4]",
       "f32[3,4]"},
      {Op::Max,
       {f("a", {3, 5})},
       "%out = max %a {axes = [], keepdims = 0} : f32[]",
       "f32[]"},
      {Op::MatMul,
       {f("a", {3, 4}), f("b", {4, 5})},
       "%out = matmul %a, %b : f32[3,5]",
       "f32[3,5]"},
      {Op::MatMul,
       {f("a", {2, 3, 4}), f("b", {2, 4, 5})},
       "%out = matmul %a, %b : f32[2,3,5]",
       "f32[2,3,5]"},
      {Op::MatMul,
       {f("a", {2, 3, 4}), f("b", {4, 5})},
       "%out = matmul %a, %b : f32[2,3,5]",
       "f32[2,3,5]"},
      {Op::Conv2d,
       {f("a", {2, 3, 6, 5}), f("w", {4, 3, 3, 3})},
       "%out = conv2d %a, %w {pad = 1, stride = 2} : f32[2,4,3,3]",
       "f32[2,4,3,3]"},
      {Op::Conv2d,
       {f("a", {1, 2, 4, 4}), f("w", {3, 2, 2, 2})},
       "%out = conv2d %a, %w {pad = 0, stride = 1} : f32[1,3,3,3]",
       "f32[1,3,3,3]"},
      {Op::MaxPool2d,
       {f("a", {2, 2, 5, 5})},
       "%out = max_pool2d %a {pad = 1, size = 3, stride = 2} : f32[2,2,3,3]",
       "f32[2,2,3,3]"},
      {Op::AvgPool2d,
       {f("a", {2, 2, 5, 5})},
       "%out = avg_pool2d %a {pad = 1, size = 2, stride = 2} : f32[2,2,3,3]",
       "f32[2,2,3,3]"},
      {Op::Unfold2d,
       {f("a", {1, 2, 4, 3})},
       "%out = unfold2d %a {pad = 1, size = 2, stride = 2, value = 0.0} : "
       "f32[1,8,6]",
       "f32[1,8,6]"},
      {Op::Fold2d,
       {f("a", {1, 8, 6})},
       "%out = fold2d %a {pad = 1, shape = [4,3], size = 2, stride = 2} : "
       "f32[1,2,4,3]",
       "f32[1,2,4,3]"},
      {Op::PlaneScatter,
       {f("g", {2, 2, 2, 2}),
        ids("i", {2, 2, 2, 2},
            {0, 4, 4, 8, 1, 2, 3, 0, 8, 8, 8, 8, 5, 6, 7, 0})},
       "%out = plane_scatter %g, %i {shape = [3,3]} : f32[2,2,3,3]",
       "f32[2,2,3,3]"},
      {Op::PlaneGather,
       {f("t", {2, 2, 3, 3}),
        ids("i", {2, 2, 2, 2},
            {0, 4, 4, 8, 1, 2, 3, 0, 8, 8, 8, 8, 5, 6, 7, 0})},
       "%out = plane_gather %t, %i : f32[2,2,2,2]",
       "f32[2,2,2,2]"},
      {Op::Softmax,
       {f("a", {4, 3}, -2, 2)},
       "%out = softmax %a {axis = 0} : f32[4,3]",
       "f32[4,3]"},
      {Op::LogSoftmax,
       {f("a", {3, 5}, -2, 2)},
       "%out = log_softmax %a {axis = -1} : f32[3,5]",
       "f32[3,5]"},
      {Op::BatchNorm,
       {f("a", {4, 3, 2, 2}), f("g", {3}), f("b", {3}), f("m", {3}),
        f("v", {3}, 0.5, 2)},
       "%out = batch_norm %a, %g, %b, %m, %v {eps = 1e-05, mode = \"train\", "
       "momentum = 0.1} : f32[4,3,2,2]",
       "f32[4,3,2,2]"},
      {Op::BatchNorm,
       {f("a", {3, 2}), f("g", {2}), f("b", {2}), f("m", {2}),
        f("v", {2}, 0.5, 2)},
       "%out = batch_norm %a, %g, %b, %m, %v {eps = 1e-05, mode = \"eval\", "
       "momentum = 0.1} : f32[3,2]",
       "f32[3,2]"},
      {Op::LayerNorm,
       {f("a", {3, 4, 5}), f("g", {5}), f("b", {5})},
       "%out = layer_norm %a, %g, %b {eps = 1e-05} : f32[3,4,5]",
       "f32[3,4,5]"},
      {Op::Dropout,
       {f("a", {4, 6})},
       "%out = dropout %a {mode = \"train\", p = 0.3, seed = 4} : f32[4,6]",
       "f32[4,6]"},
      {Op::Dropout,
       {f("a", {4, 6})},
       "%out = dropout %a {mode = \"eval\", p = 0.3, seed = 4} : f32[4,6]",
       "f32[4,6]"},
      {Op::Embedding,
       {ids("i", {2, 3}, {4, 0, 4, 1, 2, 4}), f("t", {5, 3})},
       "%out = embedding %i, %t : f32[2,3,3]",
       "f32[2,3,3]"},
      {Op::CrossEntropy,
       {f("a", {4, 5}, -3, 3), ids("y", {4}, {0, 4, 2, 2})},
       "%out = cross_entropy %a, %y {label_smoothing = 0.0} : f32[]",
       "f32[]"},
      {Op::CrossEntropy,
       {f("a", {4, 5}, -3, 3), ids("y", {4}, {1, 3, 0, 2})},
       "%out = cross_entropy %a, %y {label_smoothing = 0.2} : f32[]",
       "f32[]"},
      {Op::BCEWithLogits,
       {f("a", {3, 4}, -3, 3), f("t", {3, 4}, 0, 1)},
       "%out = binary_cross_entropy_with_logits %a, %t : f32[]",
       "f32[]"},
      // fused: the body's gradient, inlined (a reads two paths).
      {Op::Fused,
       {f("a", {3, 5}), f("b", {5})},
       "%out = fused %a, %b {kind = \"elementwise\"} : f32[3,5] {\n"
       "  %0 = arg {index = 0} : f32[3,5]\n"
       "  %1 = arg {index = 1} : f32[5]\n"
       "  %2 = broadcast %1 {shape = [3,5]} : f32[3,5]\n"
       "  %3 = mul %0, %2 : f32[3,5]\n"
       "  %4 = tanh %3 : f32[3,5]\n"
       "  %5 = mul %4, %0 : f32[3,5]\n"
       "  return %5\n"
       "}",
       "f32[3,5]"},
      {Op::MSE,
       {f("a", {3, 4}), f("b", {3, 4})},
       "%out = mse %a, %b : f32[]",
       "f32[]"},
      // A gemm kernel: the product and its epilogue, inlined.
      {Op::Fused,
       {f("a", {3, 4}), f("w", {4, 5}), f("b", {5})},
       "%out = fused %a, %w, %b {kind = \"gemm\"} : f32[3,5] {\n"
       "  %0 = arg {index = 0} : f32[3,4]\n"
       "  %1 = arg {index = 1} : f32[4,5]\n"
       "  %2 = matmul %0, %1 : f32[3,5]\n"
       "  %3 = arg {index = 2} : f32[5]\n"
       "  %4 = broadcast %3 {shape = [3,5]} : f32[3,5]\n"
       "  %5 = add %2, %4 : f32[3,5]\n"
       "  %6 = tanh %5 : f32[3,5]\n"
       "  return %6\n"
       "}",
       "f32[3,5]"},
      // A conv kernel: the convolution and its bias per channel, inlined.
      {Op::Fused,
       {f("x", {2, 2, 4, 4}), f("w", {3, 2, 3, 3}), f("b", {3, 1, 1})},
       "%out = fused %x, %w, %b {kind = \"conv\"} : f32[2,3,2,2] {\n"
       "  %0 = arg {index = 0} : f32[2,2,4,4]\n"
       "  %1 = arg {index = 1} : f32[3,2,3,3]\n"
       "  %2 = conv2d %0, %1 {pad = 1, stride = 2} : f32[2,3,2,2]\n"
       "  %3 = arg {index = 2} : f32[3,1,1]\n"
       "  %4 = broadcast %3 {shape = [2,3,2,2]} : f32[2,3,2,2]\n"
       "  %5 = add %2, %4 : f32[2,3,2,2]\n"
       "  %6 = tanh %5 : f32[2,3,2,2]\n"
       "  return %6\n"
       "}",
       "f32[2,3,2,2]"},
      // A reduce kernel: a prologue, the sum over rows and an epilogue.
      {Op::Fused,
       {f("a", {3, 4}), f("b", {4})},
       "%out = fused %a, %b {kind = \"reduce\"} : f32[4] {\n"
       "  %0 = arg {index = 0} : f32[3,4]\n"
       "  %1 = tanh %0 : f32[3,4]\n"
       "  %2 = mul %1, %0 : f32[3,4]\n"
       "  %3 = sum %2 {axes = [0], keepdims = 0} : f32[4]\n"
       "  %4 = arg {index = 1} : f32[4]\n"
       "  %5 = mul %3, %4 : f32[4]\n"
       "  return %5\n"
       "}",
       "f32[4]"},
      // A rows kernel: a smoothed loss of computed logits.
      {Op::Fused,
       {f("a", {4, 5}, -3, 3), ids("y", {4}, {1, 3, 0, 2})},
       "%out = fused %a, %y {kind = \"rows\"} : f32[] {\n"
       "  %0 = arg {index = 0} : f32[4,5]\n"
       "  %1 = arg {index = 1} : i32[4]\n"
       "  %2 = tanh %0 : f32[4,5]\n"
       "  %3 = cross_entropy %2, %1 {label_smoothing = 0.2} : f32[]\n"
       "  return %3\n"
       "}",
       "f32[]"},
      // Two results of one kernel, both used: their gradients add up in a.
      {Op::Result,
       {f("a", {3, 5})},
       "%f = fused %a {kind = \"elementwise\"} : f32[3,5] {\n"
       "  %0 = arg {index = 0} : f32[3,5]\n"
       "  %1 = tanh %0 : f32[3,5]\n"
       "  %2 = mul %1, %0 : f32[3,5]\n"
       "  return %2, %1\n"
       "}\n"
       "%t = result %f {index = 1} : f32[3,5]\n"
       "%out = mul %f, %t : f32[3,5]",
       "f32[3,5]"},
  };
}

/// Ops whose operands get no gradient by definition (checked below).
const std::set<Op> kZeroGradient = {
    Op::Input, Op::Param,  Op::State,        Op::Constant, Op::Step,
    Op::Equal, Op::OneHot, Op::StopGradient, Op::Arg,      Op::MaxPool2dIndex};

std::string caseText(const GradCase &c) {
  std::string t = "graph @t {\n";
  for (const Input &in : c.inputs)
    t += "  %" + in.name + " = input {name = \"" + in.name +
         "\"} : " + typeOf(in) + "\n";
  t += "  %r = input {name = \"r\"} : " + c.outType + "\n  " + c.body + "\n";
  t += "  %o = mul %out, %r : " + c.outType + "\n";
  t += "  %l = sum %o {axes = [], keepdims = 0} : f32[]\n  minimize %l\n}\n";
  return t;
}

llvm::StringMap<Tensor> randomLeaves(const Graph &g, const GradCase &c,
                                     uint64_t seed) {
  std::mt19937_64 rng(seed);
  llvm::StringMap<Tensor> leaves;
  for (Node *in : g.leaves(Op::Input)) {
    std::string name = in->stringAttr("name");
    auto spec =
        llvm::find_if(c.inputs, [&](const Input &i) { return i.name == name; });
    std::vector<double> v(*numElements(in->type.shape));
    if (spec != c.inputs.end() && !spec->ints.empty()) {
      v.assign(spec->ints.begin(), spec->ints.end());
      leaves[name] = Tensor::fromValues(DType::I32, in->type.shape, v);
      continue;
    }
    double lo = spec != c.inputs.end() ? spec->lo : -1;
    double hi = spec != c.inputs.end() ? spec->hi : 1;
    std::uniform_real_distribution<double> u(lo, hi);
    for (double &x : v) {
      x = u(rng);
      // Keep away from kinks at 0 (relu, abs, max ties are measure zero).
      if (lo < 0 && hi > 0 && std::abs(x) < 0.1)
        x += x < 0 ? -0.1 : 0.1;
    }
    leaves[name] = Tensor::fromValues(DType::F64, in->type.shape, v);
  }
  return leaves;
}

class OpGradient : public testing::TestWithParam<size_t> {};

TEST_P(OpGradient, MatchesFiniteDifferences) {
  static const std::vector<GradCase> all = gradCases();
  const GradCase &c = all[GetParam()];
  std::string text = caseText(c);
  SCOPED_TRACE(text);
  test::Source fwdSrc(text), trainSrc(text);
  auto forward = test::parseGraph(fwdSrc),
       training = test::parseGraph(trainSrc);
  ASSERT_TRUE(forward && training) << fwdSrc.errors;
  std::vector<std::string> wrt;
  for (const Input &in : c.inputs)
    if (in.ints.empty())
      wrt.push_back(in.name);
  size_t forwardNodes = training->nodes.size();
  ASSERT_FALSE(bool(differentiate(*training, wrt)));
  ASSERT_FALSE(bool(verifyGraph(*training)));
  // Gradient rules pick pieces with selectors and build no piecewise op,
  // whose kinks --check-grad could not see.
  for (size_t i = forwardNodes; i < training->nodes.size(); ++i)
    EXPECT_FALSE(training->nodes[i]->info().flags & Piecewise)
        << "the gradient rule builds "
        << training->nodes[i]->info().mnemonic.str();
  auto leaves = randomLeaves(*forward, c, GetParam());
  auto grads = evaluateGradients(*training, leaves, DType::F64);
  ASSERT_TRUE(bool(grads)) << llvm::toString(grads.takeError());
  auto checks = checkGradients(*training, *grads, leaves,
                               {/*samples=*/64, /*tolerance=*/1e-5});
  ASSERT_TRUE(bool(checks)) << llvm::toString(checks.takeError());
  ASSERT_EQ(checks->size(), wrt.size());
  for (const GradCheck &r : *checks) {
    EXPECT_GT(r.checked, 0);
    EXPECT_EQ(r.kinks, 0) << "d/d" << r.name; // inputs avoid kinks
    EXPECT_LT(r.worst, 1e-5) << "d/d" << r.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllOps, OpGradient, testing::Range<size_t>(0, gradCases().size()),
    [](const testing::TestParamInfo<size_t> &info) {
      return opInfo(gradCases()[info.param].op).description.str() + "_" +
             std::to_string(info.param);
    });

TEST(OpTable, EveryOpHasAGradientRuleAndACheck) {
  std::set<Op> checked;
  for (const GradCase &c : gradCases())
    checked.insert(c.op);
  for (Op op : allOps()) {
    std::string name = opInfo(op).mnemonic.str();
    EXPECT_NE(opRules(op).grad, nullptr) << name << " has no gradient rule";
    EXPECT_TRUE(checked.count(op) || kZeroGradient.count(op))
        << name << " has no gradient check";
    EXPECT_FALSE(checked.count(op) && kZeroGradient.count(op)) << name;
  }
}

TEST(Autodiff, FanOutAccumulatesAndIntegersGetNoGradient) {
  test::Source src("graph @g {\n"
                   "  %x = input {name = \"x\"} : f32[2]\n"
                   "  %k = input {name = \"k\"} : i32[2]\n"
                   "  %w = param {init = \"zeros\", name = \"w\"} : f32[2]\n"
                   "  %a = mul %w, %x : f32[2]\n"
                   "  %b = mul %a, %w : f32[2]\n" // w used twice: d/dw = 2 w x
                   "  %s = sum %b {axes = [], keepdims = 0} : f32[]\n"
                   "  minimize %s\n}\n");
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g);
  auto err = differentiate(*g, {"k"});
  ASSERT_TRUE(bool(err));
  EXPECT_EQ(llvm::toString(std::move(err)),
            "input 'k' is i32[2]; integer inputs have no gradient");
  ASSERT_FALSE(bool(differentiate(*g)));
  llvm::StringMap<Tensor> leaves;
  leaves["x"] = Tensor::fromValues(DType::F32, {2}, {3, 5});
  leaves["k"] = Tensor::fromValues(DType::I32, {2}, {1, 2});
  leaves["w"] = Tensor::fromValues(DType::F32, {2}, {2, -1});
  auto out = evaluateGradients(*g, leaves);
  ASSERT_TRUE(bool(out));
  EXPECT_EQ(out->at("loss").at(0), 2 * 2 * 3 + 1 * 5);
  EXPECT_EQ(out->at("w").at(0), 2 * 2 * 3);
  EXPECT_EQ(out->at("w").at(1), 2 * -1 * 5);
}

TEST(Autodiff, StopGradientStepAndEqualPassNoGradient) {
  test::Source src("graph @g {\n"
                   "  %w = param {init = \"zeros\", name = \"w\"} : f32[3]\n"
                   "  %s = stop_gradient %w : f32[3]\n"
                   "  %m = step %w : f32[3]\n"
                   "  %e = equal %w, %s : f32[3]\n"
                   "  %a = mul %s, %w : f32[3]\n" // d/dw = stop_gradient(w) = w
                   "  %b = add %a, %m : f32[3]\n"
                   "  %c = add %b, %e : f32[3]\n"
                   "  %l = sum %c {axes = [], keepdims = 0} : f32[]\n"
                   "  minimize %l\n}\n");
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g);
  ASSERT_FALSE(bool(differentiate(*g)));
  llvm::StringMap<Tensor> leaves;
  leaves["w"] = Tensor::fromValues(DType::F32, {3}, {1.5, -2, 0.25});
  auto out = evaluateGradients(*g, leaves);
  ASSERT_TRUE(bool(out));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(out->at("w").at(i), leaves["w"].at(i));
}

// As PyTorch: of tied maxima the first in the window takes the gradient.
TEST(Autodiff, MaxPoolSendsTheGradientToTheFirstOfTiedMaxima) {
  test::Source src("graph @g {\n"
                   "  %w = param {init = \"zeros\", name = \"w\"} : "
                   "f32[1,1,2,4]\n"
                   "  %p = max_pool2d %w {pad = 0, size = 2, stride = 2} : "
                   "f32[1,1,1,2]\n"
                   "  %l = sum %p {axes = [], keepdims = 0} : f32[]\n"
                   "  minimize %l\n}\n");
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g);
  ASSERT_FALSE(bool(differentiate(*g)));
  llvm::StringMap<Tensor> leaves;
  leaves["w"] =
      Tensor::fromValues(DType::F32, {1, 1, 2, 4}, {1, 1, 2, 5, 1, 1, 5, 3});
  auto out = evaluateGradients(*g, leaves);
  ASSERT_TRUE(bool(out)) << llvm::toString(out.takeError());
  const double want[] = {1, 0, 0, 1, 0, 0, 0, 0};
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(out->at("w").at(i), want[i]) << i;
}

TEST(Autodiff, ExtremeLogitsGiveFiniteLossesAndGradients) {
  test::Source src(
      "graph @g {\n"
      "  %z = param {init = \"zeros\", name = \"z\"} : f32[2,3]\n"
      "  %y = input {name = \"y\"} : i32[2]\n"
      "  %t = input {name = \"t\"} : f32[2,3]\n"
      "  %ce = cross_entropy %z, %y {label_smoothing = 0.1} : f32[]\n"
      "  %ls = log_softmax %z {axis = -1} : f32[2,3]\n"
      "  %lss = sum %ls {axes = [], keepdims = 0} : f32[]\n"
      "  %bce = binary_cross_entropy_with_logits %z, %t : f32[]\n"
      "  %a = add %ce, %lss : f32[]\n"
      "  %l = add %a, %bce : f32[]\n"
      "  minimize %l\n}\n");
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g);
  ASSERT_FALSE(bool(differentiate(*g)));
  llvm::StringMap<Tensor> leaves;
  leaves["z"] =
      Tensor::fromValues(DType::F32, {2, 3}, {1e4, -1e4, 0, -1e4, 1e4, 1e4});
  leaves["y"] = Tensor::fromValues(DType::I32, {2}, {1, 0});
  leaves["t"] = Tensor::fromValues(DType::F32, {2, 3}, {0, 1, 1, 1, 0, 1});
  auto out = evaluateGradients(*g, leaves);
  ASSERT_TRUE(bool(out));
  // The sum with log_softmax and BCE is finite, as are all gradients, and
  // cross_entropy alone is 18833.68 (by hand: rows 19000 and 18667.36).
  EXPECT_TRUE(std::isfinite(out->at("loss").at(0)));
  auto values = interpret(*g, leaves);
  ASSERT_TRUE(bool(values));
  for (size_t i = 0; i < g->nodes.size(); ++i)
    if (g->nodes[i]->op == Op::CrossEntropy)
      EXPECT_NEAR((*values)[i].at(0), 18833.68, 0.05);
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_TRUE(std::isfinite(out->at("z").at(i))) << i;
}

// A Hessian-vector product: differentiate sum(grad(w) * v) again and compare
// with float64 central differences of the gradient along v.
TEST(Autodiff, HessianVectorProductMatchesFiniteDifferences) {
  const char *text = R"(
model m(x: f32[4, 3], y: i32[4]) {
    param w1: f32[3, 5] = xavier_normal()
    param w2: f32[5, 2] = xavier_normal()
    minimize cross_entropy(tanh(x @ w1) @ w2, y) + mean(softplus(w1))
}
)";
  test::Source src(text);
  auto g = test::lowerSource(src);
  ASSERT_TRUE(g) << src.errors;
  std::vector<Node *> params = g->leaves(Op::Param);
  std::vector<Node *> grads = buildGradients(*g, g->objective, params);
  // v: one input per parameter; objective2 = sum_i <grad_i, v_i>.
  Node *dot = nullptr;
  for (size_t i = 0; i < params.size(); ++i) {
    Node *v = llvm::cantFail(g->add(Op::Input, {},
                                    {{"name", "v" + std::to_string(i)}}, {},
                                    params[i]->type));
    GradBuilder b(*g, *grads[i]);
    Node *s = b.sum(b.mul(grads[i], v), {0, 1}, false);
    dot = dot ? b.add(dot, s) : s;
  }
  std::vector<Node *> hv = buildGradients(*g, dot, params);
  ASSERT_FALSE(bool(verifyGraph(*g)));

  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  llvm::StringMap<Tensor> leaves;
  auto random = [&](const Node *n) {
    std::vector<double> v(*numElements(n->type.shape));
    for (double &x : v)
      x = normal(rng);
    return Tensor::fromValues(DType::F64, n->type.shape, v);
  };
  for (Node *n : g->leaves(Op::Input))
    leaves[n->stringAttr("name")] =
        n->type.dtype == DType::I32
            ? Tensor::fromValues(DType::I32, {4}, {0, 1, 1, 0})
            : random(n);
  for (Node *p : params)
    leaves[p->stringAttr("name")] = random(p);
  auto indexOf = [&](Node *n) {
    for (size_t i = 0; i < g->nodes.size(); ++i)
      if (g->nodes[i].get() == n)
        return i;
    return g->nodes.size();
  };
  auto eval = [&](const llvm::StringMap<Tensor> &l) {
    return llvm::cantFail(interpret(*g, l, {DType::F64}));
  };
  std::vector<Tensor> base = eval(leaves);
  double h = 1e-5;
  llvm::StringMap<Tensor> up = leaves, down = leaves;
  for (size_t i = 0; i < params.size(); ++i) {
    std::string name = params[i]->stringAttr("name"),
                v = "v" + std::to_string(i);
    for (int64_t k = 0; k < leaves[name].numel(); ++k) {
      up[name].data<double>()[k] += h * leaves[v].at(k);
      down[name].data<double>()[k] -= h * leaves[v].at(k);
    }
  }
  std::vector<Tensor> plus = eval(up), minus = eval(down);
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor &analytic = base[indexOf(hv[i])];
    const Tensor &gp = plus[indexOf(grads[i])], &gm = minus[indexOf(grads[i])];
    for (int64_t k = 0; k < analytic.numel(); ++k) {
      double fd = (gp.at(k) - gm.at(k)) / (2 * h);
      EXPECT_NEAR(analytic.at(k), fd, 1e-6 * std::max(1.0, std::abs(fd)))
          << params[i]->stringAttr("name") << "[" << k << "]";
    }
  }
}

TEST(Autodiff, BackwardNodesKeepTheForwardLocation) {
  test::Source src("model m(x: f32[2, 3]) {\n  param w: f32[3, 4] = ones()\n"
                   "  minimize sum(tanh(x @ w))\n}\n");
  auto g = test::lowerSource(src);
  ASSERT_TRUE(g);
  size_t forward = g->nodes.size();
  ASSERT_FALSE(bool(differentiate(*g)));
  std::set<unsigned> cols;
  for (size_t i = forward; i < g->nodes.size(); ++i) {
    EXPECT_TRUE(g->nodes[i]->loc.isKnown()) << i;
    EXPECT_EQ(g->nodes[i]->loc.line, 3u);
    cols.insert(g->nodes[i]->loc.col);
  }
  // sum at 12, tanh at 16, @ at 23.
  EXPECT_EQ(cols, (std::set<unsigned>{12, 16, 23}));
}

} // namespace
