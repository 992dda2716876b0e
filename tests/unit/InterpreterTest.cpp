//===- InterpreterTest.cpp - Every op against hand-computed values --------===//
//
// Each case is a one-op graph in textual IR, inputs named a, b, ..., and the
// expected output, computed by hand (transcendental values from Python's
// math module). Every case runs in float32 and float64. The table test at
// the end fails if an op has no case here.
//
//===----------------------------------------------------------------------===//
#include "runtime/Interpreter.h"
#include "TestUtil.h"
#include "ir/OpRules.h"
#include <cmath>
#include <gtest/gtest.h>
#include <set>

using namespace kiln;

namespace {

struct Case {
  Op op;
  std::string ir; ///< The body of `graph @t { ... }`; %out is the result.
  std::vector<std::pair<std::string, Tensor>> inputs;
  std::vector<double> expected;
};

// Inputs are held in float64 so the float64 runs see exact values; the
// interpreter converts them to the precision it runs in.
Tensor f32(llvm::ArrayRef<int64_t> shape, std::vector<double> v) {
  return Tensor::fromValues(DType::F64, shape, v);
}
Tensor i32(llvm::ArrayRef<int64_t> shape, std::vector<double> v) {
  return Tensor::fromValues(DType::I32, shape, v);
}

std::string unaryIR(const char *op, const char *attrs = "") {
  return std::string("%a = input {name = \"a\"} : f32[2]\n%out = ") + op +
         " %a" + attrs + " : f32[2]\nreturn %out";
}
const char *kFusedIR =
    "%a = input {name = \"a\"} : f32[2]\n"
    "%b = input {name = \"b\"} : f32[2]\n"
    "%out = fused %a, %b {kind = \"elementwise\"} : f32[2] {\n"
    "  %0 = arg {index = 0} : f32[2]\n"
    "  %1 = arg {index = 1} : f32[2]\n"
    "  %2 = mul %0, %1 : f32[2]\n"
    "  %3 = constant {value = 1.0} : f32[2]\n"
    "  %4 = sub %2, %3 : f32[2]\n"
    "  %5 = relu %4 : f32[2]\n"
    "  return %5\n"
    "}\n"
    "return %out";

std::string binaryIR(const char *op) {
  return std::string("%a = input {name = \"a\"} : f32[2]\n"
                     "%b = input {name = \"b\"} : f32[2]\n%out = ") +
         op + " %a, %b : f32[2]\nreturn %out";
}

/// batch_norm of x = [1, 3] (N = 2, C = 1), gamma 2, beta 1, running mean 0
/// and variance 1.
std::string batchNormIR(const char *mode) {
  std::string ir;
  for (const char *name : {"g", "b", "m", "v"})
    ir += std::string("%") + name + " = input {name = \"" + name +
          "\"} : f32[1]\n";
  return "%a = input {name = \"a\"} : f32[2,1]\n" + ir +
         "%out = batch_norm %a, %g, %b, %m, %v {eps = 1e-05, mode = \"" + mode +
         "\", momentum = 0.1} : f32[2,1]\nreturn %out";
}
std::vector<std::pair<std::string, Tensor>> batchNormInputs() {
  return {{"a", f32({2, 1}, {1, 3})},
          {"g", f32({1}, {2})},
          {"b", f32({1}, {1})},
          {"m", f32({1}, {0})},
          {"v", f32({1}, {1})}};
}

std::vector<Case> cases() {
  const double e = 2.718281828459045;
  auto a2 = [](double x, double y) {
    return std::pair{std::string("a"), f32({2}, {x, y})};
  };
  auto b2 = [](double x, double y) {
    return std::pair{std::string("b"), f32({2}, {x, y})};
  };
  auto m23 = std::pair{std::string("a"), f32({2, 3}, {1, 2, 3, 4, 5, 6})};
  auto img = std::pair{std::string("a"),
                       f32({1, 1, 4, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                          13, 14, 15, 16})};
  const char *m23In = "%a = input {name = \"a\"} : f32[2,3]\n";
  const char *imgIn = "%a = input {name = \"a\"} : f32[1,1,4,4]\n";
  return {
      {Op::Constant,
       "%out = constant {value = 2.5} : f32[2]\nreturn %out",
       {},
       {2.5, 2.5}},
      {Op::Input,
       "%out = input {name = \"a\"} : f32[2]\nreturn %out",
       {a2(1, 2)},
       {1, 2}},
      {Op::Param,
       "%out = param {init = \"zeros\", name = \"a\"} : f32[2]\nreturn %out",
       {a2(3, 4)},
       {3, 4}},
      {Op::State,
       "%out = state {init = \"ones\", name = \"a\"} : f32[2]\nreturn %out",
       {a2(5, 6)},
       {5, 6}},
      {Op::Neg, unaryIR("neg"), {a2(1, -2)}, {-1, 2}},
      {Op::Exp, unaryIR("exp"), {a2(0, 1)}, {1, e}},
      {Op::Log, unaryIR("log"), {a2(1, e)}, {0, 1}},
      {Op::Sqrt, unaryIR("sqrt"), {a2(4, 9)}, {2, 3}},
      {Op::Abs, unaryIR("abs"), {a2(-3, 2)}, {3, 2}},
      {Op::Tanh, unaryIR("tanh"), {a2(0, 1)}, {0, 0.7615941559557649}},
      {Op::Sigmoid, unaryIR("sigmoid"), {a2(0, 2)}, {0.5, 0.8807970779778823}},
      {Op::Relu, unaryIR("relu"), {a2(-1, 2)}, {0, 2}},
      {Op::LeakyRelu,
       unaryIR("leaky_relu", " {slope = 0.1}"),
       {a2(-2, 3)},
       {-0.2, 3}},
      {Op::Elu,
       unaryIR("elu", " {alpha = 1.0}"),
       {a2(-1, 2)},
       {-0.6321205588285577, 2}},
      {Op::Gelu, unaryIR("gelu"), {a2(0, 1)}, {0, 0.8413447460685429}},
      {Op::Softplus,
       unaryIR("softplus"),
       {a2(0, 30)},
       {0.6931471805599453, 30}},
      {Op::Erf, unaryIR("erf"), {a2(0, 1)}, {0, 0.8427007929497149}},
      {Op::Step, unaryIR("step"), {a2(0, 2)}, {0, 1}},
      {Op::StopGradient, unaryIR("stop_gradient"), {a2(-1, 2)}, {-1, 2}},
      {Op::Equal, binaryIR("equal"), {a2(1, 5), b2(1, 2)}, {1, 0}},
      {Op::Pad,
       "%a = input {name = \"a\"} : f32[2]\n%out = pad %a {high = [2], "
       "interior = [1], low = [1]} : f32[6]\nreturn %out",
       {a2(1, 2)},
       {0, 1, 0, 2, 0, 0}},
      {Op::Unfold2d,
       "%a = input {name = \"a\"} : f32[1,1,3,3]\n%out = unfold2d %a {pad = 0, "
       "size = 2, stride = 1, value = 0.0} : f32[1,4,4]\nreturn %out",
       {{"a", f32({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9})}},
       {1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9}},
      // Windows of one pixel, a tie, only -inf, and NaNs: the first
      // maximum, the first pixel, the last NaN (PyTorch's indices).
      {Op::MaxPool2dIndex,
       "%a = input {name = \"a\"} : f32[1,1,3,3]\n%out = max_pool2d_index %a "
       "{pad = 1, size = 2, stride = 2} : i32[1,1,2,2]\nreturn %out",
       {{"a",
         f32({1, 1, 3, 3}, {5, 3, 3, -INFINITY, 7, NAN, -INFINITY, NAN, 7})}},
       {0, 1, 3, 7}},
      {Op::PlaneScatter,
       "%g = input {name = \"g\"} : f32[1,1,2,2]\n%i = input {name = \"i\"} "
       ": i32[1,1,2,2]\n%out = plane_scatter %g, %i {shape = [3,3]} : "
       "f32[1,1,3,3]\nreturn %out",
       {{"g", f32({1, 1, 2, 2}, {1, 2, 3, 4})},
        {"i", i32({1, 1, 2, 2}, {0, 1, 1, 8})}},
       {1, 5, 0, 0, 0, 0, 0, 0, 4}},
      {Op::PlaneGather,
       "%t = input {name = \"t\"} : f32[1,1,3,3]\n%i = input {name = \"i\"} "
       ": i32[1,1,2,2]\n%out = plane_gather %t, %i : f32[1,1,2,2]\nreturn "
       "%out",
       {{"t", f32({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9})},
        {"i", i32({1, 1, 2, 2}, {0, 1, 1, 8})}},
       {1, 2, 2, 9}},
      {Op::Fold2d,
       "%a = input {name = \"a\"} : f32[1,4,4]\n%out = fold2d %a {pad = 0, "
       "shape = [3,3], size = 2, stride = 1} : f32[1,1,3,3]\nreturn %out",
       {{"a",
         f32({1, 4, 4}, {1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9})}},
       {1, 4, 3, 8, 20, 12, 7, 16, 9}},
      {Op::Add, binaryIR("add"), {a2(1, 2), b2(3, 4)}, {4, 6}},
      {Op::Sub, binaryIR("sub"), {a2(1, 2), b2(3, 4)}, {-2, -2}},
      {Op::Mul, binaryIR("mul"), {a2(1, 2), b2(3, 4)}, {3, 8}},
      {Op::Div, binaryIR("div"), {a2(1, 2), b2(4, 8)}, {0.25, 0.25}},
      {Op::Pow, binaryIR("pow"), {a2(2, 3), b2(3, 2)}, {8, 9}},
      {Op::Maximum, binaryIR("maximum"), {a2(1, 5), b2(3, 2)}, {3, 5}},
      {Op::Minimum, binaryIR("minimum"), {a2(1, 5), b2(3, 2)}, {1, 2}},
      {Op::Broadcast,
       "%a = input {name = \"a\"} : f32[2]\n%out = broadcast %a {shape = "
       "[2,2]} : f32[2,2]\nreturn %out",
       {a2(1, 2)},
       {1, 2, 1, 2}},
      {Op::Reshape,
       std::string(m23In) +
           "%out = reshape %a {shape = [3,2]} : f32[3,2]\nreturn %out",
       {m23},
       {1, 2, 3, 4, 5, 6}},
      {Op::Transpose,
       std::string(m23In) +
           "%out = transpose %a {perm = [1,0]} : f32[3,2]\nreturn %out",
       {m23},
       {1, 4, 2, 5, 3, 6}},
      {Op::Slice,
       std::string(m23In) + "%out = slice %a {begin = [0,0], end = [2,3], step "
                            "= [1,2]} : f32[2,2]\nreturn %out",
       {m23},
       {1, 3, 4, 6}},
      {Op::Slice,
       std::string(m23In) + "%out = slice %a {begin = [1,1], end = [2,3], step "
                            "= [1,1]} : f32[1,2]\nreturn %out",
       {m23},
       {5, 6}},
      {Op::Concat,
       std::string(m23In) +
           "%out = concat %a, %a {axis = 1} : f32[2,6]\nreturn %out",
       {m23},
       {1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}},
      {Op::Concat,
       std::string(m23In) +
           "%out = concat %a, %a {axis = 0} : f32[4,3]\nreturn %out",
       {m23},
       {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6}},
      {Op::Sum,
       std::string(m23In) +
           "%out = sum %a {axes = [1], keepdims = 0} : f32[2]\nreturn %out",
       {m23},
       {6, 15}},
      {Op::Mean,
       std::string(m23In) +
           "%out = mean %a {axes = [0], keepdims = 1} : f32[1,3]\nreturn %out",
       {m23},
       {2.5, 3.5, 4.5}},
      {Op::Max,
       std::string(m23In) +
           "%out = max %a {axes = [], keepdims = 0} : f32[]\nreturn %out",
       {m23},
       {6}},
      {Op::Max,
       std::string(m23In) +
           "%out = max %a {axes = [-1], keepdims = 0} : f32[2]\nreturn %out",
       {m23},
       {3, 6}},
      {Op::MatMul,
       "%a = input {name = \"a\"} : f32[2,2]\n%b = input {name = \"b\"} : "
       "f32[2,2]\n"
       "%out = matmul %a, %b : f32[2,2]\nreturn %out",
       {{"a", f32({2, 2}, {1, 2, 3, 4})}, {"b", f32({2, 2}, {5, 6, 7, 8})}},
       {19, 22, 43, 50}},
      {Op::MatMul,
       "%a = input {name = \"a\"} : f32[2,1,2]\n%b = input {name = \"b\"} : "
       "f32[2,1]\n"
       "%out = matmul %a, %b : f32[2,1,1]\nreturn %out",
       {{"a", f32({2, 1, 2}, {1, 2, 3, 4})}, {"b", f32({2, 1}, {10, 1})}},
       {12, 34}},
      {Op::Conv2d,
       "%a = input {name = \"a\"} : f32[1,1,3,3]\n%w = input {name = \"w\"} : "
       "f32[1,1,2,2]\n"
       "%out = conv2d %a, %w {pad = 0, stride = 1} : f32[1,1,2,2]\nreturn %out",
       {{"a", f32({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9})},
        {"w", f32({1, 1, 2, 2}, {1, 0, 0, 1})}},
       {6, 8, 12, 14}},
      {Op::Conv2d,
       "%a = input {name = \"a\"} : f32[1,1,3,3]\n%w = input {name = \"w\"} : "
       "f32[1,1,2,2]\n"
       "%out = conv2d %a, %w {pad = 1, stride = 2} : f32[1,1,2,2]\nreturn %out",
       {{"a", f32({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9})},
        {"w", f32({1, 1, 2, 2}, {1, 0, 0, 1})}},
       {1, 3, 7, 14}},
      {Op::MaxPool2d,
       std::string(imgIn) + "%out = max_pool2d %a {pad = 0, size = 2, stride = "
                            "2} : f32[1,1,2,2]\nreturn %out",
       {img},
       {6, 8, 14, 16}},
      {Op::AvgPool2d,
       std::string(imgIn) + "%out = avg_pool2d %a {pad = 0, size = 2, stride = "
                            "2} : f32[1,1,2,2]\nreturn %out",
       {img},
       {3.5, 5.5, 11.5, 13.5}},
      {Op::Softmax,
       unaryIR("softmax", " {axis = -1}"),
       {a2(0, std::log(3.0))},
       {0.25, 0.75}},
      {Op::LogSoftmax,
       unaryIR("log_softmax", " {axis = 0}"),
       {a2(0, std::log(3.0))},
       {-1.3862943611198906, -0.2876820724517809}},
      {Op::BatchNorm,
       batchNormIR("train"),
       batchNormInputs(),
       {-0.9999900000749995, 2.9999900000749995}},
      {Op::BatchNorm,
       batchNormIR("eval"),
       batchNormInputs(),
       {2.9999900000749995, 6.999970000224998}},
      {Op::LayerNorm,
       "%a = input {name = \"a\"} : f32[1,2]\n%g = input {name = \"g\"} : "
       "f32[2]\n"
       "%b = input {name = \"b\"} : f32[2]\n"
       "%out = layer_norm %a, %g, %b {eps = 1e-05} : f32[1,2]\nreturn %out",
       {{"a", f32({1, 2}, {1, 3})},
        {"g", f32({2}, {1, 1})},
        {"b", f32({2}, {0, 0})}},
       {-0.9999950000374997, 0.9999950000374997}},
      {Op::Dropout,
       unaryIR("dropout", " {mode = \"eval\", p = 0.5, seed = 0}"),
       {a2(1, 2)},
       {1, 2}},
      {Op::Embedding,
       "%a = input {name = \"a\"} : i32[2]\n%t = input {name = \"t\"} : "
       "f32[3,2]\n"
       "%out = embedding %a, %t : f32[2,2]\nreturn %out",
       {{"a", i32({2}, {2, 0})}, {"t", f32({3, 2}, {1, 2, 3, 4, 5, 6})}},
       {5, 6, 1, 2}},
      {Op::OneHot,
       "%a = input {name = \"a\"} : i32[2]\n%out = one_hot %a {classes = 3} : "
       "f32[2,3]\nreturn %out",
       {{"a", i32({2}, {1, 0})}},
       {0, 1, 0, 1, 0, 0}},
      {Op::CrossEntropy,
       "%a = input {name = \"a\"} : f32[1,2]\n%y = input {name = \"y\"} : "
       "i32[1]\n"
       "%out = cross_entropy %a, %y {label_smoothing = 0.0} : f32[]\nreturn "
       "%out",
       {{"a", f32({1, 2}, {0, std::log(3.0)})}, {"y", i32({1}, {1})}},
       {0.2876820724517809}},
      {Op::CrossEntropy,
       "%a = input {name = \"a\"} : f32[1,2]\n%y = input {name = \"y\"} : "
       "i32[1]\n"
       "%out = cross_entropy %a, %y {label_smoothing = 0.1} : f32[]\nreturn "
       "%out",
       {{"a", f32({1, 2}, {0, std::log(3.0)})}, {"y", i32({1}, {1})}},
       {0.3426126868851864}},
      {Op::BCEWithLogits,
       "%a = input {name = \"a\"} : f32[2]\n%b = input {name = \"b\"} : "
       "f32[2]\n"
       "%out = binary_cross_entropy_with_logits %a, %b : f32[]\nreturn %out",
       {a2(0, 2), b2(1, 0)},
       {1.410037595801459}},
      // fused: relu(a * b - 1), its body evaluated op by op (args included).
      {Op::Fused, kFusedIR, {a2(1, -2), b2(3, 4)}, {2, 0}},
      {Op::Arg, kFusedIR, {a2(2, 1), b2(1, 5)}, {1, 4}},
      // result 1 of a fused node: the body's second return value, a * b.
      {Op::Result,
       "%a = input {name = \"a\"} : f32[2]\n"
       "%b = input {name = \"b\"} : f32[2]\n"
       "%f = fused %a, %b {kind = \"elementwise\"} : f32[2] {\n"
       "  %0 = arg {index = 0} : f32[2]\n"
       "  %1 = arg {index = 1} : f32[2]\n"
       "  %2 = mul %0, %1 : f32[2]\n"
       "  %3 = neg %2 : f32[2]\n"
       "  return %3, %2\n"
       "}\n"
       "%out = result %f {index = 1} : f32[2]\n"
       "return %out",
       {a2(1, -2), b2(3, 4)},
       {3, -8}},
      {Op::MSE,
       "%a = input {name = \"a\"} : f32[2]\n%b = input {name = \"b\"} : "
       "f32[2]\n"
       "%out = mse %a, %b : f32[]\nreturn %out",
       {a2(1, 2), b2(3, 5)},
       {6.5}},
  };
}

std::vector<double> run(const Case &c, DType precision,
                        std::string *error = nullptr) {
  test::Source src("graph @t {\n" + c.ir + "\n}\n");
  auto g = test::parseGraph(src);
  EXPECT_TRUE(g) << src.errors;
  if (!g)
    return {};
  llvm::StringMap<Tensor> leaves;
  for (auto &[name, t] : c.inputs)
    leaves[name] = t;
  auto values = interpret(*g, leaves, {precision});
  if (!values) {
    std::string msg = llvm::toString(values.takeError());
    if (error)
      *error = msg;
    else
      ADD_FAILURE() << msg;
    return {};
  }
  const Tensor &out = (*values)[g->nodes.size() - 1];
  EXPECT_EQ(out.dtype(),
            isFloat(g->nodes.back()->type.dtype) ? precision : DType::I32);
  std::vector<double> v;
  for (int64_t i = 0; i < out.numel(); ++i)
    v.push_back(out.at(i));
  return v;
}

class OpCase : public testing::TestWithParam<std::tuple<size_t, DType>> {};

TEST_P(OpCase, MatchesHandComputedValues) {
  auto [index, precision] = GetParam();
  static const std::vector<Case> all = cases();
  const Case &c = all[index];
  SCOPED_TRACE(opInfo(c.op).mnemonic.str() + ": " + c.ir);
  std::vector<double> got = run(c, precision);
  ASSERT_EQ(got.size(), c.expected.size());
  double tol = precision == DType::F64 ? 1e-12 : 2e-6;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], c.expected[i],
                tol * std::max(1.0, std::abs(c.expected[i])))
        << "element " << i;
}

INSTANTIATE_TEST_SUITE_P(
    AllOps, OpCase,
    testing::Combine(testing::Range<size_t>(0, cases().size()),
                     testing::Values(DType::F32, DType::F64)),
    [](const testing::TestParamInfo<OpCase::ParamType> &info) {
      size_t index = std::get<0>(info.param);
      DType precision = std::get<1>(info.param);
      return opInfo(cases()[index].op).description.str() + "_" +
             std::to_string(index) + "_" + dtypeName(precision).str();
    });

TEST(OpTable, EveryOpHasAnInterpreterCase) {
  std::set<Op> covered;
  for (const Case &c : cases())
    covered.insert(c.op);
  for (Op op : allOps())
    EXPECT_TRUE(covered.count(op))
        << "op '" << opInfo(op).mnemonic.str() << "' has no interpreter case";
}

TEST(Interpreter, DropoutZeroesAboutPAndScalesTheRest) {
  test::Source src("graph @t {\n%a = input {name = \"a\"} : f32[10000]\n"
                   "%out = dropout %a {mode = \"train\", p = 0.25, seed = 7} : "
                   "f32[10000]\n}\n");
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g) << src.errors;
  llvm::StringMap<Tensor> leaves;
  leaves["a"] =
      Tensor::fromValues(DType::F32, {10000}, std::vector<double>(10000, 3.0));
  auto first = interpret(*g, leaves, {DType::F32, /*seed=*/1, /*step=*/0});
  auto again = interpret(*g, leaves, {DType::F32, 1, 0});
  auto next = interpret(*g, leaves, {DType::F32, 1, 1});
  ASSERT_TRUE(first && again && next);
  const Tensor &y = (*first)[1];
  int zeros = 0, differ = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    double v = y.at(i);
    EXPECT_TRUE(v == 0 || std::abs(v - 4.0) < 1e-6) << v; // 3 / (1 - 0.25)
    zeros += v == 0;
    EXPECT_EQ(v, (*again)[1].at(i)); // the same seed and step: the same mask
    differ += v != (*next)[1].at(i);
  }
  // Binomial(10000, 0.25): mean 2500, sd ~43; 6 sd either way.
  EXPECT_NEAR(zeros, 2500, 260);
  EXPECT_GT(differ, 1000); // another step draws another mask
}

TEST(Interpreter, MissingAndMisshapedBindingsAreErrors) {
  Case c{Op::Relu, unaryIR("relu"), {}, {}};
  std::string error;
  run(c, DType::F32, &error);
  EXPECT_NE(error.find("no value for input 'a'"), std::string::npos) << error;
  c.inputs = {{"a", f32({3}, {1, 2, 3})}};
  run(c, DType::F32, &error);
  EXPECT_NE(error.find("input 'a' must have shape [2], got [3]"),
            std::string::npos)
      << error;
}

TEST(Interpreter, OutOfRangeIdsAreErrors) {
  Case c{Op::Embedding,
         "%a = input {name = \"a\"} : i32[1]\n%t = input {name = \"t\"} : "
         "f32[3,2]\n"
         "%out = embedding %a, %t : f32[1,2] loc(\"m.kiln\":4:9)\nreturn %out",
         {{"a", i32({1}, {3})}, {"t", f32({3, 2}, {1, 2, 3, 4, 5, 6})}},
         {}};
  std::string error;
  run(c, DType::F64, &error);
  EXPECT_EQ(error,
            "m.kiln:4:9: embedding id 3 is out of range for a table of 3 rows");
  c = {Op::CrossEntropy,
       "%a = input {name = \"a\"} : f32[1,2]\n%y = input {name = \"y\"} : "
       "i32[1]\n"
       "%out = cross_entropy %a, %y {label_smoothing = 0.0} : f32[]\nreturn "
       "%out",
       {{"a", f32({1, 2}, {0, 1})}, {"y", i32({1}, {-1})}},
       {}};
  run(c, DType::F32, &error);
  EXPECT_EQ(error, "label -1 is out of range for 2 classes");
  for (const char *op : {"plane_scatter %v, %i {shape = [3,3]} : f32[1,1,3,3]",
                         "plane_gather %v, %i : f32[1,1,2,2]"}) {
    bool scatter = llvm::StringRef(op).starts_with("plane_scatter");
    c = {scatter ? Op::PlaneScatter : Op::PlaneGather,
         std::string("%v = input {name = \"v\"} : ") +
             (scatter ? "f32[1,1,2,2]" : "f32[1,1,3,3]") +
             "\n%i = input {name = \"i\"} : i32[1,1,2,2]\n%out = " + op +
             "\nreturn %out",
         {{"v", scatter ? f32({1, 1, 2, 2}, {1, 2, 3, 4})
                        : f32({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9})},
          {"i", i32({1, 1, 2, 2}, {0, 9, 1, 1})}},
         {}};
    run(c, DType::F64, &error);
    EXPECT_EQ(error, std::string("'") +
                         (scatter ? "plane_scatter" : "plane_gather") +
                         "' index 9 is out of range for planes of 9 pixels");
  }
}

TEST(Interpreter, StableLossesStayFiniteAtExtremeLogits) {
  Case ce{Op::CrossEntropy,
          "%a = input {name = \"a\"} : f32[1,2]\n%y = input {name = \"y\"} : "
          "i32[1]\n"
          "%out = cross_entropy %a, %y {label_smoothing = 0.0} : f32[]\nreturn "
          "%out",
          {{"a", f32({1, 2}, {1e4, -1e4})}, {"y", i32({1}, {1})}},
          {}};
  EXPECT_NEAR(run(ce, DType::F32)[0], 2e4, 1);
  Case bce{
      Op::BCEWithLogits,
      "%a = input {name = \"a\"} : f32[2]\n%b = input {name = \"b\"} : f32[2]\n"
      "%out = binary_cross_entropy_with_logits %a, %b : f32[]\nreturn %out",
      {{"a", f32({2}, {1e4, -1e4})}, {"b", f32({2}, {0, 1})}},
      {}};
  EXPECT_NEAR(run(bce, DType::F32)[0], 1e4, 1);
}

} // namespace

namespace {
TEST(Interpreter, GraphsLargerThanMemoryAreRefused) {
  kiln::test::Source src(
      "graph @huge {\n  %0 = input {name = \"x\"} : f32[68719476736]\n"
      "  %1 = exp %0 : f32[68719476736]\n}\n");
  auto g = kiln::test::parseGraph(src);
  ASSERT_TRUE(g) << src.errors;
  auto values = kiln::interpret(*g, {});
  ASSERT_FALSE(bool(values));
  std::string msg = llvm::toString(values.takeError());
  EXPECT_EQ(
      msg.rfind("interpreting @huge needs 512 GiB, more than this machine's",
                0),
      0u)
      << msg;
}
} // namespace
