//===- OpTableTest.cpp - Every op in Ops.def has its rules ----------------===//
//
// Walks the op table: a missing shape rule or interpreter rule (float32 or
// float64) fails here, and every mnemonic must map back to its op.
//
//===----------------------------------------------------------------------===//
#include "codegen/OpLowering.h"
#include "ir/OpRules.h"
#include <gtest/gtest.h>

using namespace kiln;

TEST(OpTable, EveryOpHasShapeAndInterpreterRules) {
  for (Op op : allOps()) {
    const OpRules &r = opRules(op);
    std::string name = opInfo(op).mnemonic.str();
    EXPECT_NE(r.shape, nullptr) << name << " has no shape rule";
    EXPECT_NE(r.evalF32, nullptr) << name << " has no float32 interpreter rule";
    EXPECT_NE(r.evalF64, nullptr) << name << " has no float64 interpreter rule";
  }
}

TEST(OpTable, MnemonicsAreUniqueAndParseBack) {
  EXPECT_EQ(allOps().size(), kNumOps);
  for (Op op : allOps()) {
    auto back = opFromMnemonic(opInfo(op).mnemonic);
    ASSERT_TRUE(back.has_value()) << opInfo(op).mnemonic.str();
    EXPECT_EQ(*back, op);
  }
  EXPECT_FALSE(opFromMnemonic("no_such_op").has_value());
}

TEST(OpTable, FlagsMatchArity) {
  for (Op op : allOps()) {
    const OpInfo &i = opInfo(op);
    if (i.flags & Leaf)
      EXPECT_EQ(i.arity, 0) << i.mnemonic.str();
    if (i.flags & Commutative)
      EXPECT_EQ(i.arity, 2) << i.mnemonic.str();
  }
}

// The JIT lowers every op, or the op is one whose value never needs a kernel
// (it aliases a leaf's or its operand's buffer). Lowering a node of an op
// missing here would be an internal error at compile time.
TEST(OpTable, EveryOpHasALoweringOrAliasesItsStorage) {
  for (Op op : allOps()) {
    const OpLowering &l = opLowering(op);
    std::string name = opInfo(op).mnemonic.str();
    EXPECT_TRUE(l.lower || l.aliasOnly) << name << " has no LLVM lowering";
    EXPECT_FALSE(l.lower && l.aliasOnly)
        << name << " is alias-only and has a lowering";
  }
}
