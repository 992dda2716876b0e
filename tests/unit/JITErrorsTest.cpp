//===- JITErrorsTest.cpp - Run-time errors of compiled code ---------===//
//
// What a compiled step reports instead of reading out of bounds: ids,
// labels and plane indices out of range, with the source location, as the
// interpreter does; missing, misshapen and float64 leaves; and max
// pooling's indices where maxima tie or are not numbers.
//
//===----------------------------------------------------------------------===//
#include "ErrorSpec.h"
#include "JITTestUtil.h"
#include "TestUtil.h"
#include "codegen/JIT.h"
#include "passes/Passes.h"
#include "passes/Pipeline.h"
#include "runtime/Gradients.h"
#include "runtime/Interpreter.h"
#include <gtest/gtest.h>
#include <random>

using namespace kiln;
using namespace kiln::test;

namespace {

TEST(JIT, OutOfRangeIdsAreErrorsWithTheSourceLocation) {
  test::Source src(R"(
model m(x: f32[N, 4], y: i32[N]) {
  param w: f32[4, 3] = zeros()
  minimize cross_entropy(x @ w, y)
}
)");
  auto g = test::lowerSource(src, {{"N", 2}});
  ASSERT_TRUE(g) << src.errors;
  auto leaves = randomLeaves(*g, -1, 1, {1, 7}, 1);
  TensorMap params = initialParams(*g, 1);
  for (auto &kv : params)
    leaves[kv.first] = kv.second;
  auto compiled = sharedJIT().compile(*g);
  ASSERT_TRUE(bool(compiled));
  auto got = compiled->run(leaves);
  ASSERT_FALSE(bool(got));
  std::string msg = llvm::toString(got.takeError());
  EXPECT_NE(msg.find("label 7 is out of range for 3 classes"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("test:4:"), std::string::npos) << msg;
  // So in the training step, where the loss and its gradient are one rows
  // kernel.
  auto steps = trainingPipeline();
  ASSERT_TRUE(bool(steps));
  ASSERT_FALSE(bool(runPasses(*g, *steps, {}, llvm::nulls())));
  auto step = sharedJIT().compile(*g);
  ASSERT_TRUE(bool(step)) << llvm::toString(step.takeError());
  std::unique_ptr<Graph> kernels = cloneGraph(*g);
  ASSERT_FALSE(bool(formKernels(*kernels)));
  EXPECT_TRUE(llvm::any_of(kernels->nodes, [](auto &n) {
    return n->op == Op::Fused && n->stringAttr("kind") == "rows";
  }));
  auto ran = step->run(leaves);
  ASSERT_FALSE(bool(ran));
  msg = llvm::toString(ran.takeError());
  EXPECT_NE(msg.find("label 7 is out of range for 3 classes"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("test:4:"), std::string::npos) << msg;
}

TEST(JIT, OutOfRangePlaneIndicesAreErrors) {
  for (const char *op : {"plane_scatter %v, %i {shape = [3,3]} : f32[1,1,3,3]",
                         "plane_gather %v, %i : f32[1,1,2,2]"}) {
    bool scatter = llvm::StringRef(op).starts_with("plane_scatter");
    test::Source src(std::string("graph @t {\n  %v = input {name = \"v\"} : ") +
                     (scatter ? "f32[1,1,2,2]" : "f32[1,1,3,3]") +
                     "\n  %i = input {name = \"i\"} : i32[1,1,2,2]\n"
                     "  %out = " +
                     op +
                     " loc(\"m.kir\":3:5)\n"
                     "  return %out\n}\n");
    auto g = test::parseGraph(src);
    ASSERT_TRUE(g) << src.errors;
    for (int bad : {9, -1}) {
      auto leaves = randomLeaves(*g, -1, 1, {0, bad, 1, 1}, 1);
      auto compiled = sharedJIT().compile(*g);
      ASSERT_TRUE(bool(compiled));
      auto got = compiled->run(leaves);
      ASSERT_FALSE(bool(got));
      EXPECT_EQ(llvm::toString(got.takeError()),
                std::string("m.kir:3:5: '") +
                    (scatter ? "plane_scatter" : "plane_gather") + "' index " +
                    std::to_string(bad) +
                    " is out of range for planes of 9 pixels");
    }
  }
}

/// Max pooling's indices and values where the maximum is not unique or not
/// a number: exactly the interpreter's (PyTorch's) choice, on every target,
/// for padded overlapping windows and for windows that tile the plane (the
/// vectorized path: 16 outputs of a row, then a masked 3).
TEST(JIT, PoolIndicesAndValuesOfTiesInfinitiesAndNaNsMatchTheInterpreter) {
  struct Geometry {
    const char *attrs, *in, *out;
  };
  const Geometry geometries[] = {
      {"pad = 1, size = 3, stride = 2", "[2,3,7,7]", "[2,3,4,4]"},
      {"pad = 0, size = 2, stride = 2", "[2,3,6,38]", "[2,3,3,19]"},
      {"pad = 0, size = 3, stride = 3", "[1,2,6,50]", "[1,2,2,16]"}};
  const double pick[] = {0, 1, 1, -INFINITY, NAN, 1, 0, -INFINITY, -INFINITY};
  for (const Geometry &geo : geometries) {
    for (const char *op : {"max_pool2d_index", "max_pool2d"}) {
      std::string type = std::string(op) == "max_pool2d" ? "f32" : "i32";
      test::Source src(std::string("graph @t {\n"
                                   "  %a = input {name = \"a\"} : f32") +
                       geo.in + "\n  %out = " + op + " %a {" + geo.attrs +
                       "} : " + type + geo.out + "\n  return %out\n}\n");
      auto g = test::parseGraph(src);
      ASSERT_TRUE(g) << src.errors;
      const Shape &shape = g->nodes.front()->type.shape;
      std::mt19937_64 rng(5);
      std::vector<double> v(*numElements(shape));
      for (double &x : v)
        x = pick[rng() % 9];
      llvm::StringMap<Tensor> leaves;
      leaves["a"] = Tensor::fromValues(DType::F32, shape, v);
      auto want = interpret(*g, leaves, {DType::F64});
      ASSERT_TRUE(bool(want)) << llvm::toString(want.takeError());
      for (const std::string &target : kTargets) {
        JIT &jit = jitFor(target);
        if (llvm::Error e = jit.checkRunnable()) {
          llvm::consumeError(std::move(e)); // host code always runs
          continue;
        }
        auto compiled = jit.compile(*g);
        ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
        auto got = compiled->run(leaves);
        ASSERT_TRUE(bool(got)) << llvm::toString(got.takeError());
        EXPECT_TRUE(
            test::withinErrorSpec((*got)[0], want->back(), want->back()))
            << target << " " << op << " " << geo.attrs;
      }
    }
  }
}

TEST(JIT, MissingAndMisshapedLeavesAreErrors) {
  test::Source src("graph @t {\n  %a = input {name = \"a\"} : f32[2,3]\n"
                   "  %out = neg %a : f32[2,3]\n  return %out\n}\n");
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g);
  auto compiled = sharedJIT().compile(*g);
  ASSERT_TRUE(bool(compiled));
  llvm::StringMap<Tensor> none;
  auto missing = compiled->run(none);
  ASSERT_FALSE(bool(missing));
  EXPECT_EQ(llvm::toString(missing.takeError()), "no value for input 'a'");
  llvm::StringMap<Tensor> wrong;
  wrong["a"] = Tensor(DType::F32, {3, 2});
  auto bad = compiled->run(wrong);
  ASSERT_FALSE(bool(bad));
  EXPECT_EQ(llvm::toString(bad.takeError()),
            "input 'a' must have shape [2,3], got [3,2]");
  llvm::StringMap<Tensor> ints;
  ints["a"] = Tensor(DType::I32, {2, 3});
  auto kind = compiled->run(ints);
  ASSERT_FALSE(bool(kind));
  EXPECT_EQ(llvm::toString(kind.takeError()), "input 'a' must be f32, got i32");
  // A float64 value is converted, as the interpreter converts it.
  llvm::StringMap<Tensor> f64;
  f64["a"] = Tensor::fromValues(DType::F64, {2, 3}, {1, 2, 3, 4, 5, 6});
  auto converted = compiled->run(f64);
  ASSERT_TRUE(bool(converted));
  EXPECT_EQ((*converted)[0].at(5), -6.0);
}

TEST(JIT, Float64GraphsAreRefused) {
  test::Source src("graph @t {\n  %a = input {name = \"a\"} : f64[2]\n"
                   "  %out = neg %a : f64[2]\n  return %out\n}\n");
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g) << src.errors;
  auto compiled = sharedJIT().compile(*g);
  ASSERT_FALSE(bool(compiled));
  EXPECT_EQ(llvm::toString(compiled.takeError()),
            "the JIT computes f32 and i32 values; node %0 is f64[2]");
}

} // namespace
