//===- JITTestUtil.h - What the JIT tests share ----------------*- C++ -*-===//
#ifndef KILN_TESTS_JITTESTUTIL_H
#define KILN_TESTS_JITTESTUTIL_H

#include "codegen/JIT.h"
#include "llvm/ADT/StringExtras.h"
#include <gtest/gtest.h>
#include <map>
#include <memory>
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
