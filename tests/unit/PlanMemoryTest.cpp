//===- PlanMemoryTest.cpp - The memory plan's alias classes ---------------===//
//
// Which node gets which alias class (passes/PlanMemory.h): each class where
// its users allow it, and a buffer where one user does not or the node is a
// root.
//
//===----------------------------------------------------------------------===//
#include "passes/PlanMemory.h"
#include "TestUtil.h"
#include <gtest/gtest.h>

using namespace kiln;

namespace {

/// The plan of the one graph in `text`.
BufferPlan planOf(llvm::StringRef text) {
  test::Source src(text);
  auto g = test::parseGraph(src);
  EXPECT_TRUE(g) << src.errors;
  return g ? planMemory(*g) : BufferPlan();
}

TEST(PlanMemory, EachAliasClassWhereItsUsersAllowIt) {
  BufferPlan plan = planOf(R"(graph @g {
  %x = input {name = "x"} : f32[4, 3]
  %w = param {init = "zeros", name = "w"} : f32[4, 5]
  %t = transpose %x {perm = [1, 0]} : f32[3, 4]
  %p = matmul %t, %w : f32[3, 5]
  %c = constant {value = 2.0} : f32[3, 5]
  %m = mul %p, %c : f32[3, 5]
  %s = sum %p {axes = [], keepdims = 1} : f32[1, 1]
  %b = broadcast %s {shape = [3, 5]} : f32[3, 5]
  %a = add %m, %b : f32[3, 5]
  %r = reshape %a {shape = [15]} : f32[15]
  %l = mean %r {axes = [], keepdims = 0} : f32[]
  minimize %l
})");
  std::vector<Storage> want = {
      Storage::Leaf,      Storage::Leaf,   Storage::Transposed, Storage::Buffer,
      Storage::Immediate, Storage::Buffer, Storage::Buffer,     Storage::Splat,
      Storage::Buffer,    Storage::View,   Storage::Buffer};
  ASSERT_EQ(plan.storage.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(int(plan.storage[i]), int(want[i])) << "node %" << i;
    EXPECT_EQ(plan.slotOf[i] < 0, want[i] == Storage::Transposed ||
                                      want[i] == Storage::Immediate ||
                                      want[i] == Storage::Splat)
        << "node %" << i;
  }
  // The view shares its operand's slot.
  EXPECT_EQ(plan.slotOf[9], plan.slotOf[8]);
}

TEST(PlanMemory, AUserThatCannotReadAnAliasOrARootGetsABuffer) {
  BufferPlan plan = planOf(R"(graph @g {
  %x = input {name = "x"} : f32[4, 3]
  %t = transpose %x {perm = [1, 0]} : f32[3, 4]
  %u = relu %t : f32[3, 4]
  %c = constant {value = 2.0} : f32[3, 4]
  %d = concat %u, %c {axis = 0} : f32[6, 4]
  %k = constant {value = 1.0} : f32[]
  %l = mean %d {axes = [], keepdims = 0} : f32[]
  %o = add %l, %k : f32[]
  minimize %o
  return %k
})");
  // relu is no matmul, concat is not elementwise, and %k is a root.
  EXPECT_EQ(int(plan.storage[1]), int(Storage::Buffer));
  EXPECT_EQ(int(plan.storage[3]), int(Storage::Buffer));
  EXPECT_EQ(int(plan.storage[5]), int(Storage::Buffer));
  for (size_t i = 1; i < plan.storage.size(); ++i)
    EXPECT_GE(plan.slotOf[i], 0) << "node %" << i;
}

/// An optimizer's shape: one kernel reads w, m and g at each element and
/// writes w's and m's new values.
const char *kUpdate = R"(graph @g {
  %w = param {init = "zeros", name = "w"} : f32[2, 2]
  %m = state {init = "zeros", name = "m"} : f32[2, 2]
  %g = input {name = "g"} : f32[2, 2]
  %f = fused %w, %m, %g {kind = "elementwise"} : f32[2, 2] {
    %0 = arg {index = 0} : f32[2, 2]
    %1 = arg {index = 1} : f32[2, 2]
    %2 = arg {index = 2} : f32[2, 2]
    %3 = add %1, %2 : f32[2, 2]
    %4 = sub %0, %3 : f32[2, 2]
    return %4, %3
  }
  %r = result %f {index = 1} : f32[2, 2]
  update "w", %f
  update "m", %r
)";

TEST(PlanMemory, UpdatesAreWrittenOverTheirLeafWhenNothingReadsItLater) {
  BufferPlan plan = planOf(std::string(kUpdate) + "}");
  EXPECT_TRUE(plan.inPlace[3]);
  EXPECT_TRUE(plan.inPlace[4]);
  EXPECT_EQ(plan.slotOf[3], plan.slotOf[0]);
  EXPECT_EQ(plan.slotOf[4], plan.slotOf[1]);
  EXPECT_EQ(int(plan.storage[4]), int(Storage::Result));
  EXPECT_TRUE(plan.endCopies.empty());
  EXPECT_EQ(plan.inPlaceBytes, 2 * 16);
  EXPECT_EQ(plan.workspaceBytes, 0);
}

TEST(PlanMemory, AnUpdateIsCopiedWhenTheOldValueIsReadLater) {
  // A sum of w after the kernel, and w as the output, need its old value;
  // m is still updated in place.
  for (const char *tail :
       {"  %s = sum %w {axes = [], keepdims = 0} : f32[]\n  minimize %s\n}",
        "  return %w\n}"}) {
    BufferPlan plan = planOf(std::string(kUpdate) + tail);
    EXPECT_FALSE(plan.inPlace[3]) << tail;
    EXPECT_TRUE(plan.inPlace[4]) << tail;
    EXPECT_NE(plan.slotOf[3], plan.slotOf[0]) << tail;
    ASSERT_EQ(plan.endCopies.size(), 1u) << tail;
    EXPECT_EQ(plan.endCopies[0].from, plan.slotOf[3]);
    EXPECT_EQ(plan.endCopies[0].to, plan.slotOf[0]);
  }
}

TEST(PlanMemory, AnUpdateIsCopiedWhenItsKernelReadsOtherElementsOfTheLeaf) {
  // The kernel reads w transposed: writing w[i] would change what a later
  // element reads.
  BufferPlan plan = planOf(R"(graph @g {
  %w = param {init = "zeros", name = "w"} : f32[2, 2]
  %f = fused %w {kind = "elementwise"} : f32[2, 2] {
    %0 = arg {index = 0} : f32[2, 2]
    %1 = transpose %0 {perm = [1, 0]} : f32[2, 2]
    %2 = add %0, %1 : f32[2, 2]
    %3 = relu %2 : f32[2, 2]
    return %3
  }
  update "w", %f
})");
  EXPECT_FALSE(plan.inPlace[1]);
  EXPECT_EQ(plan.endCopies.size(), 1u);
}

/// A convolution and its epilogue computing b + conv2d(x, w) and its relu,
/// returning the convolution too if `exposed`, with `tail` after it (its
/// results, updates and returns).
std::string convKernel(bool exposed, llvm::StringRef tail) {
  return (llvm::Twine(R"(graph @g {
  %x = input {name = "x"} : f32[2, 3, 6, 6]
  %w = param {init = "zeros", name = "w"} : f32[4, 3, 3, 3]
  %b = param {init = "zeros", name = "b"} : f32[2, 4, 4, 4]
  %f = fused %x, %w, %b {kind = "conv"} : f32[2, 4, 4, 4] {
    %0 = arg {index = 0} : f32[2, 3, 6, 6]
    %1 = arg {index = 1} : f32[4, 3, 3, 3]
    %2 = conv2d %0, %1 {pad = 0, stride = 1} : f32[2, 4, 4, 4]
    %3 = arg {index = 2} : f32[2, 4, 4, 4]
    %4 = add %3, %2 : f32[2, 4, 4, 4]
    %5 = relu %4 : f32[2, 4, 4, 4]
    return %4, %5)") +
          (exposed ? ", %2" : "") + R"(
  }
  %r = result %f {index = 1} : f32[2, 4, 4, 4]
)" + tail +
          "\n}")
      .str();
}

TEST(PlanMemory, AConvKernelsProductThatIsNoResultHasNoSlot) {
  // The GEMM keeps each block of it in its threads' buffers for the
  // epilogue; the column matrix (2 images x 27 rows x 16 pixels) is
  // scratch.
  BufferPlan plan = planOf(
      convKernel(false, "  %s = add %f, %r : f32[2, 4, 4, 4]\n  return %s"));
  EXPECT_EQ(plan.productOf[3], -1);
  ASSERT_GE(plan.colsOf[3], 0);
  EXPECT_EQ(plan.bytes[plan.colsOf[3]], 2 * 27 * 16 * 4);
  EXPECT_EQ(plan.leafOf[plan.colsOf[3]], -1);
  for (size_t i = 0; i < plan.productOf.size(); ++i)
    if (i != 3)
      EXPECT_EQ(plan.productOf[i], -1) << "node %" << i;
}

TEST(PlanMemory, AConvKernelsProductThatIsAResultIsWrittenInItsSlot) {
  // Result 0 is written over b, which the epilogue reads; the product is
  // result 2, in a slot of its own.
  BufferPlan plan =
      planOf(convKernel(true, "  %c = result %f {index = 2} : f32[2, 4, 4, 4]\n"
                              "  %s = add %r, %c : f32[2, 4, 4, 4]\n"
                              "  update \"b\", %f\n  return %s"));
  ASSERT_TRUE(plan.inPlace[3]);
  EXPECT_EQ(plan.slotOf[3], plan.slotOf[2]);
  EXPECT_EQ(plan.productOf[3], plan.slotOf[5]);
  EXPECT_NE(plan.slotOf[5], plan.slotOf[4]);
  EXPECT_EQ(plan.leafOf[plan.slotOf[5]], -1);
}

TEST(PlanMemory, AProductOfSeveralKBlocksIsWrittenOverAResult) {
  // K = 300 takes two K blocks: C must outlive each block's pass, so the
  // GEMM writes it over result 1 (result 0 is written over w, which the
  // epilogue reads).
  BufferPlan plan = planOf(R"(graph @g {
  %a = input {name = "a"} : f32[8, 300]
  %b = input {name = "b"} : f32[300, 5]
  %w = param {init = "zeros", name = "w"} : f32[8, 5]
  %f = fused %a, %b, %w {kind = "gemm"} : f32[8, 5] {
    %0 = arg {index = 0} : f32[8, 300]
    %1 = arg {index = 1} : f32[300, 5]
    %2 = matmul %0, %1 : f32[8, 5]
    %3 = arg {index = 2} : f32[8, 5]
    %4 = sub %3, %2 : f32[8, 5]
    %5 = tanh %2 : f32[8, 5]
    return %4, %5
  }
  %r = result %f {index = 1} : f32[8, 5]
  update "w", %f
  return %r
})");
  ASSERT_TRUE(plan.inPlace[3]);
  EXPECT_EQ(plan.productOf[3], plan.slotOf[4]);
  EXPECT_NE(plan.slotOf[4], plan.slotOf[2]);
}

TEST(PlanMemory, AReductionThatIsNoResultAccumulatesInScratch) {
  BufferPlan plan = planOf(R"(graph @g {
  %a = input {name = "a"} : f32[64, 32]
  %f = fused %a {kind = "reduce"} : f32[32] {
    %0 = arg {index = 0} : f32[64, 32]
    %1 = sum %0 {axes = [0], keepdims = 0} : f32[32]
    %2 = exp %1 : f32[32]
    return %2
  }
  return %f
})");
  ASSERT_GE(plan.productOf[1], 0);
  EXPECT_NE(plan.productOf[1], plan.slotOf[1]);
  EXPECT_EQ(plan.bytes[plan.productOf[1]], 128);
}

} // namespace
