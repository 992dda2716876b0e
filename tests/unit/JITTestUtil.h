//===- JITTestUtil.h - What the JIT tests share ----------------*- C++ -*-===//
#ifndef KILN_TESTS_JITTESTUTIL_H
#define KILN_TESTS_JITTESTUTIL_H

#include "codegen/JIT.h"
#include "ir/Graph.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include <gtest/gtest.h>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace kiln::test {

/// The targets that execution tests run on: this CPU, and AVX2 code
/// (x86-64-v3: AVX2, FMA, BMI2) wherever this CPU can run it, so an
/// AVX-512 host tests both code paths.
inline const std::vector<std::string> kTargets = {"host", "x86-64-v3"};

/// One two-thread JIT per target, shared by the tests.
inline JIT &jitFor(const std::string &target) {
  static std::map<std::string, std::unique_ptr<JIT>> jits;
  std::unique_ptr<JIT> &jit = jits[target];
  if (!jit) {
    JITOptions opts;
    opts.threads = 2;
    if (target != "host")
      opts.cpu = target;
    jit = llvm::cantFail(JIT::create(opts));
  }
  return *jit;
}
inline JIT &sharedJIT() { return jitFor("host"); }

/// Random values for every leaf of g: floats uniform in [lo, hi), ids from
/// `ids` cycled, state as for floats.
inline llvm::StringMap<Tensor> randomLeaves(const Graph &g, double lo,
                                            double hi, std::vector<int> ids,
                                            uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  llvm::StringMap<Tensor> leaves;
  for (auto &n : g.nodes) {
    if (!(n->info().flags & Leaf) || n->op == Op::Constant)
      continue;
    std::vector<double> v(*numElements(n->type.shape));
    for (size_t i = 0; i < v.size(); ++i)
      v[i] = n->type.dtype == DType::I32 ? ids[i % ids.size()] : u(rng);
    leaves[n->stringAttr("name")] =
        Tensor::fromValues(n->type.dtype, n->type.shape, v);
  }
  return leaves;
}

/// Skips a test whose target this CPU cannot run (x86-64-v3 on a CPU
/// without AVX2).
#define SKIP_UNLESS_RUNNABLE(jit)                                              \
  if (llvm::Error e = (jit).checkRunnable())                                   \
  GTEST_SKIP() << llvm::toString(std::move(e))

inline std::string testName(std::string s) {
  for (char &c : s)
    if (!llvm::isAlnum(c))
      c = '_';
  return s;
}

} // namespace kiln::test

#endif
