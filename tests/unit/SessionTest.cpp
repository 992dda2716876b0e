//===- SessionTest.cpp - Sessions, steps and batches ----------------------===//
//
// The runtime pieces of training: a session binds steps to one store and
// updates it in place; the compiled and interpreted steps agree, swaps
// included; batches, shuffles and mixing are deterministic functions of
// their seed and counter.
//
//===----------------------------------------------------------------------===//
#include "runtime/Session.h"
#include "TestUtil.h"
#include "codegen/JIT.h"
#include "runtime/Batches.h"
#include <gtest/gtest.h>
#include <numeric>
#include <set>

using namespace kiln;

namespace {

/// a and b swap, c becomes a + b, w takes 2 * w; the objective is sum(w).
const char *kSwap = R"(graph @swap {
  %a = state {init = "zeros", name = "a"} : f32[4]
  %b = state {init = "zeros", name = "b"} : f32[4]
  %c = state {init = "zeros", name = "c"} : f32[4]
  %w = param {init = "zeros", name = "w"} : f32[4]
  %s = add %a, %b : f32[4]
  %k = constant {value = 2.0} : f32[4]
  %w2 = mul %w, %k : f32[4]
  %l = sum %w {axes = [], keepdims = 0} : f32[]
  update "a", %b
  update "b", %a
  update "c", %s
  update "w", %w2
  minimize %l
}
)";

class Steps : public ::testing::TestWithParam<bool> {
protected:
  /// The step of g on the backend under test (the JIT's lives in `jit`).
  std::unique_ptr<Step> makeStep(const Graph &g) {
    if (!GetParam())
      return std::make_unique<InterpStep>(g);
    jit = llvm::cantFail(JIT::create());
    auto compiled = jit->compile(g);
    if (!compiled) {
      ADD_FAILURE() << llvm::toString(compiled.takeError());
      return nullptr;
    }
    return llvm::cantFail(JITStep::create(*compiled));
  }
  std::unique_ptr<JIT> jit;
};

TEST_P(Steps, FindLeafNamesEachLeafByItsIndex) {
  test::Source src(kSwap);
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g);
  std::unique_ptr<Step> step = makeStep(*g);
  ASSERT_TRUE(step);
  llvm::ArrayRef<Step::Leaf> leaves = step->leaves();
  ASSERT_EQ(leaves.size(), 4u);
  for (size_t i = 0; i < leaves.size(); ++i)
    EXPECT_EQ(step->findLeaf(leaves[i].name), int64_t(i)) << leaves[i].name;
  EXPECT_EQ(step->findLeaf("w"), 3);
  EXPECT_EQ(step->findLeaf("nope"), -1);
}

TEST_P(Steps, UpdateLeavesInPlaceEvenWhenTheySwap) {
  test::Source src(kSwap);
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g);
  std::unique_ptr<Step> step = makeStep(*g);
  ASSERT_TRUE(step);
  Session s;
  size_t i = llvm::cantFail(s.attach(std::move(step)));
  float *a = s.find("a")->buffer.as<float>(),
        *b = s.find("b")->buffer.as<float>(),
        *c = s.find("c")->buffer.as<float>(),
        *w = s.find("w")->buffer.as<float>();
  for (int k = 0; k < 4; ++k) {
    a[k] = float(k + 1);
    b[k] = float(10 * (k + 1));
    w[k] = 0.5f * float(k);
  }
  ASSERT_FALSE(bool(s.run(i, 0)));
  // The objective reads w before its update: 0 + 0.5 + 1 + 1.5.
  EXPECT_EQ(s.step(i).objective(), 3.0);
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(a[k], float(10 * (k + 1)));
    EXPECT_EQ(b[k], float(k + 1));
    EXPECT_EQ(c[k], float(11 * (k + 1)));
    EXPECT_EQ(w[k], float(k));
  }
  // The buffers persist: a second run swaps back and doubles again.
  ASSERT_FALSE(bool(s.run(i, 0)));
  EXPECT_EQ(s.step(i).objective(), 6.0);
  EXPECT_EQ(a[2], 3.0f);
  EXPECT_EQ(w[3], 6.0f);
}

INSTANTIATE_TEST_SUITE_P(Backends, Steps, ::testing::Bool(),
                         [](const auto &info) {
                           return info.param ? "jit" : "interp";
                         });

TEST(Session, StepsShareTheStoreAndKeepTheirOwnInputs) {
  test::Source src(R"(graph @one {
  %w = param {init = "zeros", name = "w"} : f32[2]
  %x = input {name = "x"} : f32[2]
  %y = mul %w, %x : f32[2]
  %l = sum %y {axes = [], keepdims = 0} : f32[]
  minimize %l
}
graph @two {
  %w = param {init = "zeros", name = "w"} : f32[2]
  %x = input {name = "x"} : f32[3]
  %l = sum %w {axes = [], keepdims = 0} : f32[]
  minimize %l
}
graph @clash {
  %w = state {init = "zeros", name = "w"} : f32[2]
  %l = sum %w {axes = [], keepdims = 0} : f32[]
  minimize %l
}
)");
  auto graphs = parseIR(src.id, src.diags);
  ASSERT_EQ(graphs.size(), 3u) << src.errors;
  Session s;
  size_t one =
      llvm::cantFail(s.attach(std::make_unique<InterpStep>(*graphs[0])));
  size_t two =
      llvm::cantFail(s.attach(std::make_unique<InterpStep>(*graphs[1])));
  EXPECT_EQ(s.store().size(), 1u);
  size_t x1 = llvm::cantFail(s.inputIndex(one, "x"));
  size_t x2 = llvm::cantFail(s.inputIndex(two, "x"));
  EXPECT_NE(s.input(one, x1), s.input(two, x2));
  EXPECT_EQ(llvm::toString(s.inputIndex(one, "z").takeError()),
            "the step has no input 'z' (inputs: x)");
  // The same name as state in another step is an error naming both.
  auto clash = s.attach(std::make_unique<InterpStep>(*graphs[2]));
  ASSERT_FALSE(bool(clash));
  EXPECT_EQ(llvm::toString(clash.takeError()),
            "'w' is state f32[2] in one step and param f32[2] in another");
  // Loading lists every mismatch.
  TensorMap bad;
  bad["w"] = Tensor(DType::F32, {3});
  bad["v"] = Tensor(DType::F32, {1});
  EXPECT_EQ(llvm::toString(s.load(bad)),
            "'v' f32[1] is not in the model; 'w' is f32[3], the model's is "
            "f32[2]");
  TensorMap good;
  good["w"] = Tensor::fromValues(DType::F32, {2}, {1.5, -2});
  ASSERT_FALSE(bool(s.load(good)));
  EXPECT_EQ(s.find("w")->buffer.as<float>()[1], -2.0f);
  EXPECT_EQ(s.snapshot().at("w").at(0), 1.5);
}

TEST(Batches, ShufflesArePermutationsFixedBySeedAndCounter) {
  std::vector<int64_t> a = shuffled(1000, 7, RngStream::Shuffle, 3);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i)
    ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(a, shuffled(1000, 7, RngStream::Shuffle, 3));
  EXPECT_NE(a, shuffled(1000, 7, RngStream::Shuffle, 4));
  EXPECT_NE(a, shuffled(1000, 8, RngStream::Shuffle, 3));
  EXPECT_NE(a, shuffled(1000, 7, RngStream::Split, 3));
  // The generator is this file's, not a library's: its first values are
  // fixed, so checkpoints made elsewhere resume to the same batches.
  Rng r(1, RngStream::Shuffle, 0);
  uint64_t first = r.next();
  EXPECT_EQ(first, Rng(1, RngStream::Shuffle, 0).next());
  EXPECT_EQ(shuffled(5, 1, RngStream::Shuffle, 0),
            shuffled(5, 1, RngStream::Shuffle, 0));
}

TEST(Batches, RandomDrawsHaveTheirDistributions) {
  Rng r(3, RngStream::Mix, 1);
  double sum = 0, sq = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    double b = r.beta(0.4);
    ASSERT_GE(b, 0.0);
    ASSERT_LE(b, 1.0);
    sum += b;
    sq += b * b;
  }
  // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)).
  double mean = sum / n, var = sq / n - mean * mean;
  EXPECT_NEAR(mean, 0.5, 0.01);
  EXPECT_NEAR(var, 1.0 / (4 * 1.8), 0.01);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i)
    ++counts[r.below(7)];
  for (int c : counts)
    EXPECT_NEAR(c, 10000, 400);
}

TEST(Batches, GatherMixupAndCutmix) {
  Dataset d;
  d.images = Tensor(DType::F32, {4, 2, 2});
  d.labels = Tensor(DType::I32, {4});
  for (int i = 0; i < 16; ++i)
    d.images.data<float>()[i] = float(i);
  for (int i = 0; i < 4; ++i)
    d.labels.data<int32_t>()[i] = 10 + i;
  float x[12];
  int32_t y[3];
  gatherBatch(d, {3, 0, 2}, x, y);
  EXPECT_EQ(x[0], 12.0f);
  EXPECT_EQ(x[4], 0.0f);
  EXPECT_EQ(x[11], 11.0f);
  EXPECT_EQ(y[0], 13);
  EXPECT_EQ(y[2], 12);

  // Mixup: each row is lambda * itself + (1 - lambda) * its partner.
  float m[12];
  std::copy(x, x + 12, m);
  Rng rng(5, RngStream::Mix, 1);
  Mix mix = mixupBatch(m, y, 3, 4, 0.5, rng);
  ASSERT_EQ(mix.partnerLabels.size(), 3u);
  std::multiset<int32_t> partners(mix.partnerLabels.begin(),
                                  mix.partnerLabels.end());
  EXPECT_EQ(partners, (std::multiset<int32_t>{13, 10, 12}));
  for (int r = 0; r < 3; ++r) {
    int p = mix.partnerLabels[r] == 13 ? 0 : mix.partnerLabels[r] == 10 ? 1 : 2;
    for (int k = 0; k < 4; ++k)
      EXPECT_FLOAT_EQ(m[r * 4 + k], float(mix.lambda) * x[r * 4 + k] +
                                        float(1 - mix.lambda) * x[p * 4 + k]);
  }

  // CutMix: lambda is the share of each image left unpasted.
  std::vector<float> img(2 * 16 * 16);
  std::iota(img.begin(), img.end(), 0.0f);
  std::vector<float> orig = img;
  int32_t labels[2] = {0, 1};
  Rng rng2(9, RngStream::Mix, 2);
  Mix cut = cutmixBatch(img.data(), labels, 2, 1, 16, 16, 1.0, rng2);
  int64_t kept = 0;
  for (int k = 0; k < 256; ++k)
    kept += img[k] == orig[k];
  EXPECT_NEAR(cut.lambda, double(kept) / 256, 1e-12);
}

} // namespace
