//===- JITTest.cpp - Compiled code against the reference interpreter ------===//
//
// Differential tests: every op, at sizes 1, 3, 17 and 129 along one axis,
// with broadcasting and transposed matmul operands, compiled by the JIT and
// compared with the interpreter in float32; every model's loss and
// gradients; bitwise reproducibility across thread counts; and the compile
// cache. Run-time errors are in JITErrorsTest.cpp, the runtime GEMM and the
// targets in GemmTargetTest.cpp.
//
//===----------------------------------------------------------------------===//
#include "codegen/JIT.h"
#include "ErrorSpec.h"
#include "JITTestUtil.h"
#include "TestUtil.h"
#include "ir/Graph.h"
#include "ir/Optimizers.h"
#include "passes/Autodiff.h"
#include "passes/Passes.h"
#include "passes/Pipeline.h"
#include "runtime/Gradients.h"
#include "runtime/Interpreter.h"
#include <functional>
#include <gtest/gtest.h>
#include <random>
#include <set>

using namespace kiln;
using namespace kiln::test;

namespace {

/// One differential case: IR text (a graph returning %out) with `S` standing
/// for the size under test, and the input range.
struct OpCase {
  Op op;
  std::string text;
  double lo = -1, hi = 1;
  std::vector<int> ids = {0};
};

const char *kFusedJIT =
    "%a = input {name = \"a\"} : f32[S,3]\n"
    "%b = input {name = \"b\"} : f32[3]\n"
    "%c = input {name = \"c\"} : f32[3,S]\n"
    "%out = fused %a, %b, %c {kind = \"elementwise\"} : f32[S,3] {\n"
    "  %0 = arg {index = 0} : f32[S,3]\n"
    "  %1 = arg {index = 1} : f32[3]\n"
    "  %2 = arg {index = 2} : f32[3,S]\n"
    "  %3 = broadcast %1 {shape = [S,3]} : f32[S,3]\n"
    "  %4 = transpose %2 {perm = [1,0]} : f32[S,3]\n"
    "  %5 = mul %0, %3 : f32[S,3]\n"
    "  %6 = add %5, %4 : f32[S,3]\n"
    "  %7 = tanh %6 : f32[S,3]\n"
    "  return %7\n"
    "}";

const char *kGemmJIT = "%a = input {name = \"a\"} : f32[S,7]\n"
                       "%w = input {name = \"w\"} : f32[S3,7]\n"
                       "%b = input {name = \"b\"} : f32[S3]\n"
                       "%f = fused %a, %w, %b {kind = \"gemm\"} : f32[S,S3] {\n"
                       "  %0 = arg {index = 0} : f32[S,7]\n"
                       "  %1 = arg {index = 1} : f32[S3,7]\n"
                       "  %2 = transpose %1 {perm = [1,0]} : f32[7,S3]\n"
                       "  %3 = matmul %0, %2 : f32[S,S3]\n"
                       "  %4 = arg {index = 2} : f32[S3]\n"
                       "  %5 = broadcast %4 {shape = [S,S3]} : f32[S,S3]\n"
                       "  %6 = add %3, %5 : f32[S,S3]\n"
                       "  %7 = tanh %6 : f32[S,S3]\n"
                       "  return %7, %3\n"
                       "}\n"
                       "%p = result %f {index = 1} : f32[S,S3]\n"
                       "%out = mul %f, %p : f32[S,S3]";

const char *kGemmScratchJIT =
    "%a = input {name = \"a\"} : f32[7,S]\n"
    "%w = input {name = \"w\"} : f32[7,5]\n"
    "%c = input {name = \"c\"} : f32[S,5]\n"
    "%out = fused %a, %w, %c {kind = \"gemm\"} : f32[S,5] {\n"
    "  %0 = arg {index = 0} : f32[7,S]\n"
    "  %1 = transpose %0 {perm = [1,0]} : f32[S,7]\n"
    "  %2 = arg {index = 1} : f32[7,5]\n"
    "  %3 = matmul %1, %2 : f32[S,5]\n"
    "  %4 = arg {index = 2} : f32[S,5]\n"
    "  %5 = mul %3, %4 : f32[S,5]\n"
    "  return %5\n"
    "}";

const char *kResultsJIT =
    "%a = input {name = \"a\"} : f32[S,3]\n"
    "%f = fused %a {kind = \"elementwise\"} : f32[S,3] {\n"
    "  %0 = arg {index = 0} : f32[S,3]\n"
    "  %1 = exp %0 : f32[S,3]\n"
    "  %2 = neg %1 : f32[S,3]\n"
    "  %3 = mul %1, %0 : f32[S,3]\n"
    "  return %2, %1, %3\n"
    "}\n"
    "%r = result %f {index = 1} : f32[S,3]\n"
    "%q = result %f {index = 2} : f32[S,3]\n"
    "%s = sub %r, %q : f32[S,3]\n"
    "%out = add %s, %f : f32[S,3]";

const char *kReduceRowsJIT =
    "%a = input {name = \"a\"} : f32[S,3]\n"
    "%b = input {name = \"b\"} : f32[S,3]\n"
    "%c = input {name = \"c\"} : f32[3]\n"
    "%f = fused %a, %b, %c {kind = \"reduce\"} : f32[3] {\n"
    "  %0 = arg {index = 0} : f32[S,3]\n"
    "  %1 = arg {index = 1} : f32[S,3]\n"
    "  %2 = mul %0, %1 : f32[S,3]\n"
    "  %3 = sum %2 {axes = [0], keepdims = 0} : f32[3]\n"
    "  %4 = arg {index = 2} : f32[3]\n"
    "  %5 = sub %4, %3 : f32[3]\n"
    "  return %5, %3\n"
    "}\n"
    "%s = result %f {index = 1} : f32[3]\n"
    "%out = mul %f, %s : f32[3]";

const char *kReduceMaxJIT =
    "%a = input {name = \"a\"} : f32[3,S]\n"
    "%out = fused %a {kind = \"reduce\"} : f32[3,1] {\n"
    "  %0 = arg {index = 0} : f32[3,S]\n"
    "  %1 = tanh %0 : f32[3,S]\n"
    "  %2 = max %1 {axes = [1], keepdims = 1} : f32[3,1]\n"
    "  %3 = exp %2 : f32[3,1]\n"
    "  return %3\n"
    "}";

const char *kReduceMeanJIT =
    "%a = input {name = \"a\"} : f32[S,3,2]\n"
    "%out = fused %a {kind = \"reduce\"} : f32[] {\n"
    "  %0 = arg {index = 0} : f32[S,3,2]\n"
    "  %1 = mul %0, %0 : f32[S,3,2]\n"
    "  %2 = mean %1 {axes = [], keepdims = 0} : f32[]\n"
    "  return %2\n"
    "}";

const char *kRowsJIT =
    "%z = input {name = \"z\"} : f32[S,5]\n"
    "%y = input {name = \"y\"} : i32[S]\n"
    "%f = fused %z, %y {kind = \"rows\"} : f32[] {\n"
    "  %0 = arg {index = 0} : f32[S,5]\n"
    "  %1 = arg {index = 1} : i32[S]\n"
    "  %2 = cross_entropy %0, %1 {label_smoothing = 0.1} : f32[]\n"
    "  %3 = softmax %0 {axis = -1} : f32[S,5]\n"
    "  %4 = one_hot %1 {classes = 5} : f32[S,5]\n"
    "  %5 = sub %3, %4 : f32[S,5]\n"
    "  return %2, %5\n"
    "}\n"
    "%g = result %f {index = 1} : f32[S,5]\n"
    "%fb = broadcast %f {shape = [S,5]} : f32[S,5]\n"
    "%out = add %g, %fb : f32[S,5]";

const char *kRowsLogJIT = "%z = input {name = \"z\"} : f32[S,5]\n"
                          "%out = fused %z {kind = \"rows\"} : f32[S,5] {\n"
                          "  %0 = arg {index = 0} : f32[S,5]\n"
                          "  %1 = tanh %0 : f32[S,5]\n"
                          "  %2 = log_softmax %1 {axis = 1} : f32[S,5]\n"
                          "  %3 = mul %2, %0 : f32[S,5]\n"
                          "  return %3\n"
                          "}";

// Each `S` is replaced by the size; `S2` by size + 2 (for windows); `T2` and
// `T3` by the outputs of windows of 2 and 3 that tile a width of S2.
std::vector<OpCase> opCases() {
  auto unary = [](Op op, const char *mn, double lo = -1, double hi = 1) {
    std::string text = std::string("%a = input {name = \"a\"} : f32[S,3]\n"
                                   "%out = ") +
                       mn + " %a : f32[S,3]";
    return OpCase{op, text, lo, hi};
  };
  auto binary = [](Op op, const char *mn, double lo = -1, double hi = 1) {
    std::string text = std::string("%a = input {name = \"a\"} : f32[3,S]\n"
                                   "%b = input {name = \"b\"} : f32[3,S]\n"
                                   "%out = ") +
                       mn + " %a, %b : f32[3,S]";
    return OpCase{op, text, lo, hi};
  };
  return {
      {Op::Input, "%out = input {name = \"a\"} : f32[S,2]"},
      {Op::Param, "%p = param {init = \"zeros\", name = \"p\"} : f32[S]\n"
                  "%out = neg %p : f32[S]"},
      {Op::State, "%p = state {init = \"ones\", name = \"s\"} : f32[S]\n"
                  "%out = exp %p : f32[S]"},
      {Op::Constant, "%out = constant {value = 2.5} : f32[S,2]"},
      unary(Op::Neg, "neg"),
      unary(Op::Exp, "exp", -3, 3),
      unary(Op::Log, "log", 0.01, 5),
      unary(Op::Sqrt, "sqrt", 0, 5),
      unary(Op::Abs, "abs"),
      unary(Op::Tanh, "tanh", -4, 4),
      unary(Op::Sigmoid, "sigmoid", -6, 6),
      unary(Op::Relu, "relu"),
      {Op::LeakyRelu, "%a = input {name = \"a\"} : f32[S,3]\n"
                      "%out = leaky_relu %a {slope = 0.1} : f32[S,3]"},
      {Op::Elu, "%a = input {name = \"a\"} : f32[S,3]\n"
                "%out = elu %a {alpha = 1.5} : f32[S,3]"},
      unary(Op::Gelu, "gelu", -4, 4),
      unary(Op::Softplus, "softplus", -30, 30),
      unary(Op::Erf, "erf", -3, 3),
      unary(Op::Step, "step"),
      unary(Op::StopGradient, "stop_gradient"),
      binary(Op::Add, "add"),
      binary(Op::Sub, "sub"),
      binary(Op::Mul, "mul"),
      binary(Op::Div, "div", 0.5, 2),
      binary(Op::Pow, "pow", 0.1, 3),
      binary(Op::Maximum, "maximum"),
      binary(Op::Minimum, "minimum"),
      {Op::Equal, "%a = input {name = \"a\"} : f32[3,S]\n"
                  "%r = relu %a : f32[3,S]\n"
                  "%z = constant {value = 0.0} : f32[3,S]\n"
                  "%out = equal %r, %z : f32[3,S]"},
      {Op::Broadcast, "%a = input {name = \"a\"} : f32[S,1]\n"
                      "%out = broadcast %a {shape = [2,S,4]} : f32[2,S,4]"},
      {Op::Broadcast, "%a = input {name = \"a\"} : f32[S]\n"
                      "%out = broadcast %a {shape = [3,S]} : f32[3,S]"},
      {Op::Reshape, "%a = input {name = \"a\"} : f32[S,6]\n"
                    "%r = reshape %a {shape = [6,S]} : f32[6,S]\n"
                    "%out = neg %r : f32[6,S]"},
      {Op::Transpose, "%a = input {name = \"a\"} : f32[2,S,3]\n"
                      "%out = transpose %a {perm = [2,0,1]} : f32[3,2,S]"},
      {Op::Transpose, "%a = input {name = \"a\"} : f32[S,5]\n"
                      "%out = transpose %a {perm = [1,0]} : f32[5,S]"},
      {Op::Slice, "%a = input {name = \"a\"} : f32[S2,7]\n"
                  "%out = slice %a {begin = [1,0], end = [S2,7], step = "
                  "[1,3]} : f32[S1,3]"},
      {Op::Pad, "%a = input {name = \"a\"} : f32[2,S]\n"
                "%out = pad %a {high = [0,2], interior = [1,0], low = [1,1]} "
                ": f32[4,S3]"},
      {Op::Concat, "%a = input {name = \"a\"} : f32[2,1]\n"
                   "%b = input {name = \"b\"} : f32[2,S]\n"
                   "%c = input {name = \"c\"} : f32[2,2]\n"
                   "%out = concat %a, %b, %c {axis = 1} : f32[2,S3]"},
      {Op::Sum, "%a = input {name = \"a\"} : f32[3,S,5]\n"
                "%out = sum %a {axes = [1], keepdims = 0} : f32[3,5]"},
      {Op::Sum, "%a = input {name = \"a\"} : f32[S,5]\n"
                "%out = sum %a {axes = [0], keepdims = 0} : f32[5]"},
      // A whole-tensor sum, one vectorized loop: positive inputs, because
      // the error of a signed sum that cancels depends on its order (each
      // fixed order is allowed) more than the spec, relative to the result,
      // allows.
      {Op::Sum,
       "%a = input {name = \"a\"} : f32[4,S]\n"
       "%out = sum %a {axes = [], keepdims = 0} : f32[]",
       0.5, 1},
      // Adjacent reduced axes are one loop: H and W of a bias gradient.
      {Op::Sum,
       "%a = input {name = \"a\"} : f32[2,3,S,4]\n"
       "%out = sum %a {axes = [0,2,3], keepdims = 0} : f32[3]",
       0.5, 1},
      {Op::Max, "%a = input {name = \"a\"} : f32[3,S,5]\n"
                "%out = max %a {axes = [1,2], keepdims = 1} : f32[3,1,1]"},
      {Op::Mean, "%a = input {name = \"a\"} : f32[3,4,S]\n"
                 "%out = mean %a {axes = [0,2], keepdims = 1} : f32[1,4,1]"},
      {Op::Max, "%a = input {name = \"a\"} : f32[3,4,S]\n"
                "%out = max %a {axes = [-1], keepdims = 0} : f32[3,4]"},
      {Op::MatMul, "%a = input {name = \"a\"} : f32[S,4]\n"
                   "%b = input {name = \"b\"} : f32[4,5]\n"
                   "%out = matmul %a, %b : f32[S,5]"},
      {Op::MatMul, "%a = input {name = \"a\"} : f32[2,3,S]\n"
                   "%b = input {name = \"b\"} : f32[2,S,5]\n"
                   "%out = matmul %a, %b : f32[2,3,5]"},
      {Op::MatMul, "%a = input {name = \"a\"} : f32[2,S,4]\n"
                   "%b = input {name = \"b\"} : f32[4,S]\n"
                   "%out = matmul %a, %b : f32[2,S,S]"},
      // Transposed operands, read in place: a^T b and a b^T.
      {Op::MatMul, "%a = input {name = \"a\"} : f32[7,S]\n"
                   "%t = transpose %a {perm = [1,0]} : f32[S,7]\n"
                   "%b = input {name = \"b\"} : f32[7,S]\n"
                   "%out = matmul %t, %b : f32[S,S]"},
      {Op::MatMul, "%a = input {name = \"a\"} : f32[2,3,S]\n"
                   "%b = input {name = \"b\"} : f32[2,5,S]\n"
                   "%t = transpose %b {perm = [0,2,1]} : f32[2,S,5]\n"
                   "%out = matmul %a, %t : f32[2,3,5]"},
      {Op::Conv2d, "%a = input {name = \"a\"} : f32[2,3,S2,5]\n"
                   "%w = input {name = \"w\"} : f32[4,3,3,3]\n"
                   "%out = conv2d %a, %w {pad = 1, stride = 2} : "
                   "f32[2,4,H2,3]"},
      {Op::MaxPool2d, "%a = input {name = \"a\"} : f32[2,2,S2,5]\n"
                      "%out = max_pool2d %a {pad = 1, size = 3, stride = 2} "
                      ": f32[2,2,H2,3]"},
      {Op::AvgPool2d, "%a = input {name = \"a\"} : f32[2,2,S2,5]\n"
                      "%out = avg_pool2d %a {pad = 1, size = 3, stride = 2} "
                      ": f32[2,2,H2,3]"},
      {Op::Unfold2d, "%a = input {name = \"a\"} : f32[1,2,S2,3]\n"
                     "%out = unfold2d %a {pad = 1, size = 3, stride = 2, "
                     "value = -1e30} : f32[1,18,P2]"},
      {Op::Fold2d, "%a = input {name = \"a\"} : f32[1,18,P2]\n"
                   "%out = fold2d %a {pad = 1, shape = [S2,3], size = 3, "
                   "stride = 2} : f32[1,2,S2,3]"},
      {Op::MaxPool2dIndex,
       "%a = input {name = \"a\"} : f32[2,2,S2,5]\n"
       "%out = max_pool2d_index %a {pad = 1, size = 3, stride = 2} "
       ": i32[2,2,H2,3]"},
      // Without padding, where windows skip the inside test.
      {Op::MaxPool2d, "%a = input {name = \"a\"} : f32[2,S,6,5]\n"
                      "%out = max_pool2d %a {pad = 0, size = 2, stride = 2} "
                      ": f32[2,S,3,2]"},
      {Op::MaxPool2dIndex,
       "%a = input {name = \"a\"} : f32[2,S,6,5]\n"
       "%out = max_pool2d_index %a {pad = 0, size = 2, stride = 2} "
       ": i32[2,S,3,2]"},
      // Windows that tile the plane, vectorized along a row (up to 16
      // outputs at a time, masked at the row's end): widths S2 of 3, 5, 19
      // and 131 pool to 1, 2, 9 and 65 (four whole vectors and one lane)
      // with size 2, and to 1, 1, 6 and 43 with size 3.
      {Op::MaxPool2d, "%a = input {name = \"a\"} : f32[2,2,5,S2]\n"
                      "%out = max_pool2d %a {pad = 0, size = 2, stride = 2} "
                      ": f32[2,2,2,T2]"},
      {Op::AvgPool2d, "%a = input {name = \"a\"} : f32[2,2,5,S2]\n"
                      "%out = avg_pool2d %a {pad = 0, size = 2, stride = 2} "
                      ": f32[2,2,2,T2]"},
      {Op::MaxPool2dIndex,
       "%a = input {name = \"a\"} : f32[2,2,5,S2]\n"
       "%out = max_pool2d_index %a {pad = 0, size = 2, stride = 2} "
       ": i32[2,2,2,T2]"},
      {Op::MaxPool2d, "%a = input {name = \"a\"} : f32[2,1,7,S2]\n"
                      "%out = max_pool2d %a {pad = 0, size = 3, stride = 3} "
                      ": f32[2,1,2,T3]"},
      {Op::AvgPool2d, "%a = input {name = \"a\"} : f32[2,1,7,S2]\n"
                      "%out = avg_pool2d %a {pad = 0, size = 3, stride = 3} "
                      ": f32[2,1,2,T3]"},
      {Op::MaxPool2dIndex,
       "%a = input {name = \"a\"} : f32[2,1,7,S2]\n"
       "%out = max_pool2d_index %a {pad = 0, size = 3, stride = 3} "
       ": i32[2,1,2,T3]"},
      {Op::Fold2d, "%a = input {name = \"a\"} : f32[S,4,16]\n"
                   "%out = fold2d %a {pad = 0, shape = [5,5], size = 2, "
                   "stride = 1} : f32[S,1,5,5]"},
      {Op::PlaneScatter,
       "%g = input {name = \"g\"} : f32[2,S,2,2]\n"
       "%i = input {name = \"i\"} : i32[2,S,2,2]\n"
       "%out = plane_scatter %g, %i {shape = [3,S2]} : f32[2,S,3,S2]",
       -1,
       1,
       {0, 4, 4, 8, 1, 2, 3, 0, 8, 2}},
      {Op::PlaneGather,
       "%t = input {name = \"t\"} : f32[2,S,3,S2]\n"
       "%i = input {name = \"i\"} : i32[2,S,2,2]\n"
       "%out = plane_gather %t, %i : f32[2,S,2,2]",
       -1,
       1,
       {0, 4, 4, 8, 1, 2, 3, 0, 8, 2}},
      {Op::Softmax,
       "%a = input {name = \"a\"} : f32[S,3]\n"
       "%out = softmax %a {axis = 0} : f32[S,3]",
       -5, 5},
      {Op::LogSoftmax,
       "%a = input {name = \"a\"} : f32[3,S]\n"
       "%out = log_softmax %a {axis = -1} : f32[3,S]",
       -5, 5},
      {Op::BatchNorm,
       "%a = input {name = \"a\"} : f32[4,S,2,3]\n"
       "%g = input {name = \"g\"} : f32[S]\n%b = input {name = \"b\"} : "
       "f32[S]\n"
       "%m = input {name = \"m\"} : f32[S]\n%v = input {name = \"v\"} : "
       "f32[S]\n"
       "%out = batch_norm %a, %g, %b, %m, %v {eps = 1e-05, mode = \"train\", "
       "momentum = 0.1} : f32[4,S,2,3]",
       0.1, 2},
      {Op::BatchNorm,
       "%a = input {name = \"a\"} : f32[3,S]\n"
       "%g = input {name = \"g\"} : f32[S]\n%b = input {name = \"b\"} : "
       "f32[S]\n"
       "%m = input {name = \"m\"} : f32[S]\n%v = input {name = \"v\"} : "
       "f32[S]\n"
       "%out = batch_norm %a, %g, %b, %m, %v {eps = 1e-05, mode = \"eval\", "
       "momentum = 0.1} : f32[3,S]",
       0.1, 2},
      {Op::LayerNorm, "%a = input {name = \"a\"} : f32[3,S]\n"
                      "%g = input {name = \"g\"} : f32[S]\n"
                      "%b = input {name = \"b\"} : f32[S]\n"
                      "%out = layer_norm %a, %g, %b {eps = 1e-05} : f32[3,S]"},
      {Op::Dropout, "%a = input {name = \"a\"} : f32[4,S]\n"
                    "%out = dropout %a {mode = \"train\", p = 0.3, seed = 4} "
                    ": f32[4,S]"},
      {Op::Dropout, "%a = input {name = \"a\"} : f32[4,S]\n"
                    "%out = dropout %a {mode = \"eval\", p = 0.3, seed = 4} "
                    ": f32[4,S]"},
      {Op::Embedding,
       "%i = input {name = \"i\"} : i32[2,3]\n"
       "%t = input {name = \"t\"} : f32[5,S]\n"
       "%out = embedding %i, %t : f32[2,3,S]",
       -1,
       1,
       {4, 0, 4, 1, 2, 3}},
      {Op::OneHot,
       "%i = input {name = \"i\"} : i32[S]\n"
       "%out = one_hot %i {classes = 5} : f32[S,5]",
       -1,
       1,
       {4, 0, 2, 1, 3}},
      {Op::CrossEntropy,
       "%a = input {name = \"a\"} : f32[S,6]\n"
       "%y = input {name = \"y\"} : i32[S]\n"
       "%out = cross_entropy %a, %y {label_smoothing = 0.1} : f32[]",
       -4,
       4,
       {5, 0, 3, 1}},
      {Op::BCEWithLogits,
       "%a = input {name = \"a\"} : f32[3,S]\n"
       "%t = input {name = \"t\"} : f32[3,S]\n"
       "%out = binary_cross_entropy_with_logits %a, %t : f32[]",
       -4, 4},
      // fused: a bias broadcast over rows and a transposed operand read
      // through their index maps, then the scalar chain.
      {Op::Fused, kFusedJIT},
      {Op::Arg, kFusedJIT},
      // A GEMM epilogue (the product several strips and row tiles wide at
      // S = 129, B read transposed), writing the product as a result, and
      // one whose product is none of its results.
      {Op::Fused, kGemmJIT},
      {Op::Result, kGemmJIT},
      {Op::Fused, kGemmScratchJIT},
      // Several results of one loop.
      {Op::Result, kResultsJIT},
      // Reductions with a prologue and an epilogue: over the leading axis
      // (rows accumulated whole) with the sum as a result, and a max and a
      // mean over the last axis, each output's block in turn.
      {Op::Fused, kReduceRowsJIT},
      {Op::Fused, kReduceMaxJIT},
      {Op::Fused, kReduceMeanJIT},
      // Rows: a smoothed loss and its gradient in one pass per row (rows in
      // order), and log-probabilities of a computed value (rows split).
      {Op::Fused, kRowsJIT, -3, 3, {0, 3, 4, 1, 2}},
      {Op::Fused, kRowsLogJIT},
      {Op::MSE, "%a = input {name = \"a\"} : f32[3,S]\n"
                "%b = input {name = \"b\"} : f32[3,S]\n"
                "%out = mse %a, %b : f32[]"},
  };
}

/// The case's graph at size s.
std::string caseGraph(const OpCase &c, int64_t s) {
  // Window arithmetic: H = S + 2 with kernel 3, pad 1, stride 2.
  int64_t h = s + 2, oh = (h + 2 - 3) / 2 + 1;
  std::string body = c.text;
  auto sub = [&](llvm::StringRef from, int64_t v) {
    std::string out;
    llvm::StringRef rest = body;
    while (true) {
      size_t at = rest.find(from);
      if (at == llvm::StringRef::npos)
        break;
      out += rest.take_front(at).str() + std::to_string(v);
      rest = rest.drop_front(at + from.size());
    }
    body = out + rest.str();
  };
  sub("S2", h);
  sub("S1", (h - 1 + 0) / 1); // slice 1:h:1
  sub("S3", s + 3);
  sub("H2", oh);
  sub("P2", oh * 2);
  sub("T2", h / 2); // windows of 2 and of 3 that tile a width of h
  sub("T3", h / 3);
  sub("S", s);
  std::string text = "graph @t {\n";
  for (llvm::StringRef line : llvm::split(body, '\n'))
    text += "  " + line.str() + "\n";
  return text + "  return %out\n}\n";
}

class JITOp
    : public testing::TestWithParam<std::tuple<std::string, size_t, int64_t>> {
};

TEST_P(JITOp, MatchesInterpreter) {
  static const std::vector<OpCase> cases = opCases();
  JIT &jit = jitFor(std::get<0>(GetParam()));
  SKIP_UNLESS_RUNNABLE(jit);
  const OpCase &c = cases[std::get<1>(GetParam())];
  int64_t s = std::get<2>(GetParam());
  std::string text = caseGraph(c, s);
  test::Source src(text);
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g) << src.errors << text;
  auto leaves = randomLeaves(*g, c.lo, c.hi, c.ids, 11 + s);
  auto want32 = interpret(*g, leaves);
  ASSERT_TRUE(bool(want32)) << llvm::toString(want32.takeError());
  auto want64 = interpret(*g, leaves, {DType::F64});
  ASSERT_TRUE(bool(want64)) << llvm::toString(want64.takeError());
  auto compiled = jit.compile(*g);
  ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError()) << text;
  auto got = compiled->run(leaves, /*seed=*/0, /*step=*/0);
  ASSERT_TRUE(bool(got)) << llvm::toString(got.takeError());
  ASSERT_EQ(got->size(), 1u);
  // %out is the last node.
  EXPECT_TRUE(test::withinErrorSpec((*got)[0], want32->back(), want64->back()))
      << text;
}

INSTANTIATE_TEST_SUITE_P(
    AllOps, JITOp,
    testing::Combine(testing::ValuesIn(kTargets),
                     testing::Range<size_t>(0, opCases().size()),
                     testing::Values(1, 3, 17, 129)),
    [](const testing::TestParamInfo<JITOp::ParamType> &info) {
      size_t i = std::get<1>(info.param);
      return testName(std::get<0>(info.param) + "_" +
                      opInfo(opCases()[i].op).mnemonic.str() + "_" +
                      std::to_string(i) + "_size" +
                      std::to_string(std::get<2>(info.param)));
    });

TEST(JITOpTable, EveryOpHasADifferentialCase) {
  std::set<Op> covered;
  for (const OpCase &c : opCases())
    covered.insert(c.op);
  for (Op op : allOps())
    EXPECT_TRUE(covered.count(op)) << opInfo(op).mnemonic.str();
}

//===-- Whole models ------------------------------------------------------===//

std::string modelFile(const char *name) {
  auto buf = llvm::MemoryBuffer::getFile(std::string(KILN_SOURCE_DIR) +
                                         "/models/" + name + ".kiln");
  return buf ? (*buf)->getBuffer().str() : "";
}

struct ModelRun {
  std::unique_ptr<Graph> training;
  llvm::StringMap<Tensor> leaves;
};

ModelRun trainingGraph(test::Source &src, int64_t batch) {
  ModelRun r;
  r.training = test::lowerSource(src, {{"N", batch}});
  if (!r.training)
    return r;
  // The gradient step `kiln grad` runs: the training pipeline, no
  // optimizer.
  auto steps = trainingPipeline();
  EXPECT_TRUE(bool(steps));
  EXPECT_FALSE(bool(runPasses(*r.training, *steps, {}, llvm::nulls())));
  TensorMap params = initialParams(*r.training, 7), inputs;
  std::mt19937_64 rng(3);
  for (Node *in : r.training->leaves(Op::Input)) {
    std::vector<double> v(*numElements(in->type.shape));
    for (double &x : v)
      x = in->type.dtype == DType::I32 ? double(rng() % 2)
                                       : double(rng() % 1000) / 1000.0;
    inputs[in->stringAttr("name")] =
        Tensor::fromValues(in->type.dtype, in->type.shape, v);
  }
  auto leaves = bindLeaves(*r.training, params, inputs);
  EXPECT_TRUE(bool(leaves)) << llvm::toString(leaves.takeError());
  if (leaves)
    r.leaves = std::move(*leaves);
  return r;
}

/// Every root (loss, gradients, updated statistics) within the error spec.
/// Every root of g (loss, gradients, updates, output) compiled by jit
/// within the error spec of the float32 and float64 interpreters.
void expectRootsMatch(JIT &jit, Graph &g, const llvm::StringMap<Tensor> &leaves,
                      const std::string &what) {
  auto want32 = interpret(g, leaves);
  ASSERT_TRUE(bool(want32)) << llvm::toString(want32.takeError());
  auto want64 = interpret(g, leaves, {DType::F64});
  ASSERT_TRUE(bool(want64)) << llvm::toString(want64.takeError());
  auto compiled = jit.compile(g);
  ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
  auto got = compiled->run(leaves);
  ASSERT_TRUE(bool(got)) << llvm::toString(got.takeError());
  auto roots = g.roots();
  ASSERT_EQ(got->size(), roots.size());
  for (size_t i = 0; i < roots.size(); ++i) {
    size_t node =
        llvm::find_if(g.nodes, [&](auto &n) { return n.get() == *roots[i]; }) -
        g.nodes.begin();
    EXPECT_TRUE(
        test::withinErrorSpec((*got)[i], (*want32)[node], (*want64)[node]))
        << what << " root " << i << " (%" << node << ")";
  }
}

void expectModelMatches(JIT &jit, const char *name, int64_t batch) {
  test::Source src(modelFile(name));
  ModelRun r = trainingGraph(src, batch);
  ASSERT_TRUE(r.training) << src.errors;
  expectRootsMatch(jit, *r.training, r.leaves, name);
}

class JITModels : public testing::TestWithParam<std::string> {
protected:
  void expectMatches(const char *name, int64_t batch) {
    JIT &jit = jitFor(GetParam());
    SKIP_UNLESS_RUNNABLE(jit);
    expectModelMatches(jit, name, batch);
  }
};

TEST_P(JITModels, MLP) { expectMatches("mlp", 16); }
TEST_P(JITModels, SoftmaxRegression) {
  expectMatches("softmax_regression", 16);
}
TEST_P(JITModels, LogisticRegression) {
  expectMatches("logistic_regression", 16);
}
TEST_P(JITModels, SVM) { expectMatches("svm", 16); }
TEST_P(JITModels, CNN) { expectMatches("cnn", 4); }
TEST_P(JITModels, AlexNet) { expectMatches("alexnet", 2); }
TEST_P(JITModels, ResNet) { expectMatches("resnet", 2); }

INSTANTIATE_TEST_SUITE_P(Targets, JITModels, testing::ValuesIn(kTargets),
                         [](const testing::TestParamInfo<std::string> &info) {
                           return testName(info.param);
                         });

/// Checks a model's buffer plan against the graph: every value's bytes are
/// left alone from the node that writes them to the last node that reads
/// them (the end of the step for roots), and the plan shares bytes between
/// values that are never live together.
/// With `kernels`, the plan is that of the kernel graph the JIT compiles
/// (fused kernels, results, GEMM epilogues).
void expectPlanIsSound(const char *name, int64_t batch, bool kernels = false) {
  test::Source src(modelFile(name));
  ModelRun r = trainingGraph(src, batch);
  ASSERT_TRUE(r.training) << src.errors;
  if (kernels)
    ASSERT_FALSE(bool(formKernels(*r.training)));
  const Graph &g = *r.training;
  BufferPlan plan = planMemory(g);
  llvm::DenseMap<const Node *, int64_t> index;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    index[g.nodes[i].get()] = i;
  // Per slot, the nodes at which it must hold its value.
  const int64_t end = g.nodes.size();
  std::vector<int64_t> from(plan.numSlots(), end + 1), to(plan.numSlots(), -1);
  auto liveAt = [&](int64_t slot, int64_t i) {
    from[slot] = std::min(from[slot], i);
    to[slot] = std::max(to[slot], i);
  };
  // The bytes a node's value is read from, or -1 for an immediate: a
  // transpose read in place by matmul and a folded one-element broadcast
  // read their operand's bytes; a folded constant has none.
  std::function<int64_t(const Node *)> storage = [&](const Node *n) {
    int64_t s = plan.slotOf[index[n]];
    if (s >= 0)
      return s;
    if (n->op == Op::Constant)
      return int64_t(-1);
    return storage(n->operands[0]);
  };
  for (int64_t i = 0; i < end; ++i) {
    const Node &n = *g.nodes[i];
    if (plan.slotOf[i] >= 0)
      liveAt(plan.slotOf[i], i);
    // A fused node's kernel writes its results.
    if (n.op == Op::Result)
      liveAt(plan.slotOf[i], index[n.operands[0]]);
    for (int64_t s : {plan.productOf[i], plan.colsOf[i]})
      if (s >= 0)
        liveAt(s, i);
    for (const Node *o : n.operands)
      if (int64_t s = storage(o); s >= 0)
        liveAt(s, i);
  }
  for (const Node *root : g.rootValues())
    liveAt(storage(root), end);
  int64_t regions = 0;
  for (size_t a = 0; a < plan.numSlots(); ++a) {
    if (plan.leafOf[a] >= 0 || plan.bytes[a] == 0)
      continue;
    ++regions;
    EXPECT_EQ(plan.offset[a] % 64, 0);
    EXPECT_LE(plan.offset[a] + plan.bytes[a], plan.workspaceBytes);
    for (size_t b = a + 1; b < plan.numSlots(); ++b) {
      if (plan.leafOf[b] >= 0 || plan.bytes[b] == 0)
        continue;
      bool together = from[a] <= to[b] && from[b] <= to[a];
      bool overlap = plan.offset[a] < plan.offset[b] + plan.bytes[b] &&
                     plan.offset[b] < plan.offset[a] + plan.bytes[a];
      EXPECT_FALSE(together && overlap)
          << name << ": slots " << a << " and " << b << " share bytes while "
          << "both are live";
    }
  }
  EXPECT_GT(regions, 5) << name;
  // Sharing happened: deep networks keep few of their activations at once.
  EXPECT_LT(plan.workspaceBytes, plan.unsharedBytes()) << name;
}

TEST(JITPlan, MLP) { expectPlanIsSound("mlp", 16); }
TEST(JITPlan, SVM) { expectPlanIsSound("svm", 16); }
TEST(JITPlan, CNN) { expectPlanIsSound("cnn", 4); }
TEST(JITPlan, ResNet) { expectPlanIsSound("resnet", 2); }
TEST(JITPlan, MLPKernels) { expectPlanIsSound("mlp", 16, true); }
TEST(JITPlan, CNNKernels) { expectPlanIsSound("cnn", 4, true); }
TEST(JITPlan, ResNetKernels) { expectPlanIsSound("resnet", 2, true); }

// The step kiln train runs: Adam's update of each weight in the epilogue of
// its gradient's GEMM, which keeps the gradient in its threads' tiles (the
// step returns no gradients). At these batches the weight gradients' GEMMs
// split across two threads.
TEST(JIT, TrainingStepsWithAdamMatchTheInterpreter) {
  for (auto [name, batch] : {std::pair{"mlp", 32}, std::pair{"cnn", 4}}) {
    test::Source src(modelFile(name));
    auto g = test::lowerSource(src, {{"N", batch}});
    ASSERT_TRUE(g) << src.errors;
    OptimizerConfig adam{"adam", {}};
    for (const OptimizerArg &a : findOptimizer("adam")->args)
      adam.args[a.name] = a.def.value_or(0.01);
    TrainingOptions opts;
    opts.optimizer = &adam;
    opts.dropGradients = true;
    auto steps = trainingPipeline(opts);
    ASSERT_TRUE(bool(steps)) << llvm::toString(steps.takeError());
    ASSERT_FALSE(bool(runPasses(*g, *steps, {}, llvm::nulls())));
    ASSERT_TRUE(g->gradients.empty());
    // Nonnegative, so that Adam's second moments are.
    auto leaves = randomLeaves(*g, 0, 1, {0, 3, 9}, 11);
    for (unsigned threads : {1u, 2u}) {
      JITOptions o;
      o.threads = threads;
      auto jit = llvm::cantFail(JIT::create(o));
      expectRootsMatch(*jit, *g, leaves,
                       std::string(name) + ", " + std::to_string(threads) +
                           " threads");
    }
  }
}

TEST(JIT, ResultsAreBitwiseIdenticalAcrossThreadCounts) {
  test::Source src(modelFile("cnn"));
  ModelRun r = trainingGraph(src, 8);
  ASSERT_TRUE(r.training);
  std::vector<std::vector<Tensor>> results;
  for (unsigned t : {1u, 2u, 2u}) {
    JITOptions opts;
    opts.threads = t;
    auto jit = llvm::cantFail(JIT::create(opts));
    auto compiled = jit->compile(*r.training);
    ASSERT_TRUE(bool(compiled));
    auto got = compiled->run(r.leaves);
    ASSERT_TRUE(bool(got));
    results.push_back(std::move(*got));
  }
  for (size_t k = 1; k < results.size(); ++k)
    for (size_t i = 0; i < results[0].size(); ++i)
      EXPECT_EQ(std::memcmp(results[0][i].raw(), results[k][i].raw(),
                            results[0][i].nbytes()),
                0)
          << "root " << i << ", run " << k;
}

TEST(JIT, CompiledCodeIsCachedPerGraph) {
  auto jit = llvm::cantFail(JIT::create());
  test::Source a(modelFile("mlp")), b(modelFile("mlp")), c(modelFile("svm"));
  auto g1 = test::lowerSource(a, {{"N", 4}});
  auto g2 = test::lowerSource(b, {{"N", 4}});
  auto g3 = test::lowerSource(c, {{"N", 4}});
  ASSERT_TRUE(g1 && g2 && g3);
  auto first = jit->compile(*g1);
  ASSERT_TRUE(bool(first));
  auto second = jit->compile(*g2); // an identical graph: no new compilation
  ASSERT_TRUE(bool(second));
  EXPECT_EQ(&*first, &*second);
  EXPECT_EQ(jit->compilations(), 1u);
  ASSERT_TRUE(bool(jit->compile(*g3)));
  EXPECT_EQ(jit->compilations(), 2u);
}

/// Hand-written kernels the passes do not make, each of which once broke a
/// plan or a lowering: every root within the error spec of the
/// interpreter's.
TEST(JIT, HandWrittenKernelsMatchTheInterpreter) {
  const char *graphs[] = {
      // An update read at other elements through a value computed from it
      // (a transpose, a row broadcast): not written in place.
      R"(graph @g {
  %w = param {init = "zeros", name = "w"} : f32[64, 64]
  %f = fused %w {kind = "elementwise"} : f32[64, 64] {
    %0 = arg {index = 0} : f32[64, 64]
    %1 = neg %0 : f32[64, 64]
    %2 = transpose %1 {perm = [1, 0]} : f32[64, 64]
    %3 = add %0, %2 : f32[64, 64]
    return %3
  }
  update "w", %f
})",
      R"(graph @g {
  %p = param {name = "p", init = "zeros"} : f32[64,64]
  %f = fused %p {kind = "elementwise"} : f32[64,64] {
    %0 = arg {index = 0} : f32[64,64]
    %1 = constant {value = 0.5} : f32[64,64]
    %2 = mul %0, %1 : f32[64,64]
    %3 = slice %2 {begin = [0,0], end = [1,64], step = [1,1]} : f32[1,64]
    %4 = broadcast %3 {shape = [64,64]} : f32[64,64]
    %5 = sub %0, %4 : f32[64,64]
    return %5
  }
  update "p", %f
})",
      // A result read after other buffers are made: its bytes are the
      // kernel's from the kernel on.
      R"(graph @g {
  %x = input {name = "x"} : f32[128,64]
  %y = input {name = "y"} : f32[32,32]
  %a = relu %x : f32[128,64]
  %f = fused %a {kind = "elementwise"} : f32[64,64] {
    %0 = arg {index = 0} : f32[128,64]
    %1 = slice %0 {begin = [0,0], end = [64,64], step = [1,1]} : f32[64,64]
    %2 = neg %1 : f32[64,64]
    %3 = exp %1 : f32[64,64]
    return %2, %3
  }
  %g = transpose %y {perm = [1,0]} : f32[32,32]
  %r = result %f {index = 1} : f32[64,64]
  %gs = sum %g {axes = [0,1], keepdims = 0} : f32[]
  %gb = broadcast %gs {shape = [64,64]} : f32[64,64]
  %o = add %f, %r : f32[64,64]
  %o2 = add %o, %gb : f32[64,64]
  return %o2
})",
      // A product returned by the body but read by no `result`.
      R"(graph @g {
  %a = input {name = "a"} : f32[4,8]
  %b = input {name = "b"} : f32[8,16]
  %f = fused %a, %b {kind = "gemm"} : f32[4,16] {
    %0 = arg {index = 0} : f32[4,8]
    %1 = arg {index = 1} : f32[8,16]
    %2 = matmul %0, %1 : f32[4,16]
    %3 = relu %2 : f32[4,16]
    return %3, %2
  }
  return %f
})",
      // Products that are no result, written over the parameter their
      // epilogue reads: kept in the threads' panels with two K blocks
      // (K = 300), in tiles with one, over row blocks of both threads (each
      // is over the GEMM's threshold for a second thread).
      R"(graph @g {
  %a = input {name = "a"} : f32[200,300]
  %b = input {name = "b"} : f32[300,70]
  %w = param {init = "zeros", name = "w"} : f32[200,70]
  %f = fused %a, %b, %w {kind = "gemm"} : f32[200,70] {
    %0 = arg {index = 0} : f32[200,300]
    %1 = arg {index = 1} : f32[300,70]
    %2 = matmul %0, %1 : f32[200,70]
    %3 = arg {index = 2} : f32[200,70]
    %4 = constant {value = 0.125} : f32[200,70]
    %5 = mul %2, %4 : f32[200,70]
    %6 = sub %3, %5 : f32[200,70]
    return %6
  }
  update "w", %f
})",
      // With two K blocks, a product that is no result is written over the
      // first result not written in place, which the epilogue then
      // computes over it.
      R"(graph @g {
  %a = input {name = "a"} : f32[100,300]
  %b = input {name = "b"} : f32[300,70]
  %w = param {init = "zeros", name = "w"} : f32[100,70]
  %f = fused %a, %b, %w {kind = "gemm"} : f32[100,70] {
    %0 = arg {index = 0} : f32[100,300]
    %1 = arg {index = 1} : f32[300,70]
    %2 = matmul %0, %1 : f32[100,70]
    %3 = arg {index = 2} : f32[100,70]
    %4 = sub %3, %2 : f32[100,70]
    %5 = tanh %2 : f32[100,70]
    return %4, %5
  }
  %r = result %f {index = 1} : f32[100,70]
  update "w", %f
  return %r
})",
      R"(graph @g {
  %a = input {name = "a"} : f32[64,700]
  %b = input {name = "b"} : f32[64,30]
  %w = param {init = "zeros", name = "w"} : f32[700,30]
  %t = transpose %a {perm = [1,0]} : f32[700,64]
  %f = fused %t, %b, %w {kind = "gemm"} : f32[700,30] {
    %0 = arg {index = 0} : f32[700,64]
    %1 = arg {index = 1} : f32[64,30]
    %2 = matmul %0, %1 : f32[700,30]
    %3 = arg {index = 2} : f32[700,30]
    %4 = sub %3, %2 : f32[700,30]
    return %4
  }
  update "w", %f
})",
      // Conv kernels: a bias per channel and its relu, at stride 2 (rows of
      // the epilogue are image * channels + channel).
      R"(graph @g {
  %x = input {name = "x"} : f32[3,2,9,9]
  %w = param {init = "zeros", name = "w"} : f32[5,2,3,3]
  %b = param {init = "zeros", name = "b"} : f32[5,1,1]
  %f = fused %x, %w, %b {kind = "conv"} : f32[3,5,5,5] {
    %0 = arg {index = 0} : f32[3,2,9,9]
    %1 = arg {index = 1} : f32[5,2,3,3]
    %2 = conv2d %0, %1 {pad = 1, stride = 2} : f32[3,5,5,5]
    %3 = arg {index = 2} : f32[5,1,1]
    %4 = broadcast %3 {shape = [3,5,5,5]} : f32[3,5,5,5]
    %5 = add %2, %4 : f32[3,5,5,5]
    %6 = relu %5 : f32[3,5,5,5]
    return %6, %5
  }
  %r = result %f {index = 1} : f32[3,5,5,5]
  %o = sub %f, %r : f32[3,5,5,5]
  return %o
})",
      // Many pixel blocks per image; a map per pixel (a division per
      // element), an operand read at each element, the product exposed,
      // and the new value written over the parameter it reads.
      R"(graph @g {
  %x = input {name = "x"} : f32[4,3,12,12]
  %w = param {init = "zeros", name = "w"} : f32[40,3,3,3]
  %m = input {name = "m"} : f32[12,12]
  %p = param {init = "zeros", name = "p"} : f32[4,40,12,12]
  %f = fused %x, %w, %m, %p {kind = "conv"} : f32[4,40,12,12] {
    %0 = arg {index = 0} : f32[4,3,12,12]
    %1 = arg {index = 1} : f32[40,3,3,3]
    %2 = conv2d %0, %1 {pad = 1, stride = 1} : f32[4,40,12,12]
    %3 = arg {index = 2} : f32[12,12]
    %4 = transpose %3 {perm = [1,0]} : f32[12,12]
    %5 = broadcast %4 {shape = [4,40,12,12]} : f32[4,40,12,12]
    %6 = mul %2, %5 : f32[4,40,12,12]
    %7 = arg {index = 3} : f32[4,40,12,12]
    %8 = sub %7, %6 : f32[4,40,12,12]
    return %8, %2
  }
  %c = result %f {index = 1} : f32[4,40,12,12]
  %s = sum %c {axes = [], keepdims = 0} : f32[]
  update "p", %f
  return %s
})",
      // Images whose products are split over the threads (M N K = 9.4e6),
      // so their im2col columns, made just before each product, are too
      // (the second image's rows at an offset): as a plain conv2d and as a
      // conv kernel.
      R"(graph @g {
  %x = input {name = "x"} : f32[2,16,32,32]
  %w = input {name = "w"} : f32[64,16,3,3]
  %y = conv2d %x, %w {pad = 1, stride = 1} : f32[2,64,32,32]
  return %y
})",
      R"(graph @g {
  %x = input {name = "x"} : f32[2,16,32,32]
  %w = input {name = "w"} : f32[64,16,3,3]
  %f = fused %x, %w {kind = "conv"} : f32[2,64,32,32] {
    %0 = arg {index = 0} : f32[2,16,32,32]
    %1 = arg {index = 1} : f32[64,16,3,3]
    %2 = conv2d %0, %1 {pad = 1, stride = 1} : f32[2,64,32,32]
    %3 = tanh %2 : f32[2,64,32,32]
    return %3
  }
  return %f
})",
      R"(graph @g {
  %a = input {name = "a"} : f32[64,32]
  %f = fused %a {kind = "reduce"} : f32[32] {
    %0 = arg {index = 0} : f32[64,32]
    %1 = sum %0 {axes = [0], keepdims = 0} : f32[32]
    %2 = exp %1 : f32[32]
    return %2, %1
  }
  return %f
})",
  };
  for (const char *text : graphs) {
    test::Source src(text);
    auto g = test::parseGraph(src);
    ASSERT_TRUE(g) << src.errors;
    auto leaves = randomLeaves(*g, -1, 1, {0}, 5);
    for (unsigned threads : {1u, 2u}) {
      JITOptions opts;
      opts.threads = threads;
      auto jit = llvm::cantFail(JIT::create(opts));
      expectRootsMatch(*jit, *g, leaves,
                       std::string(text) + "\n" + std::to_string(threads) +
                           " threads:");
    }
  }
}

} // namespace
