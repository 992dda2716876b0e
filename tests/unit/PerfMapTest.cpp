//===- PerfMapTest.cpp - KILN_PERF_MAP names the compiled code ------------===//
//
// With KILN_PERF_MAP=1, every JIT in the process appends "START SIZE NAME"
// lines to one /tmp/perf-PID.map, so perf names each kernel.
//
//===----------------------------------------------------------------------===//
#include "codegen/PerfMap.h"
#include "TestUtil.h"
#include "codegen/JIT.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include <cstdlib>
#include <gtest/gtest.h>
#include <optional>

using namespace kiln;

namespace {

TEST(PerfMap, EveryJITInTheProcessAppendsWholeLinesToOneMap) {
  // The map is opened on first use; what this test's JITs add follows.
  std::string path = perfMapPath();
  uint64_t before = 0;
  ASSERT_FALSE(llvm::sys::fs::file_size(path, before)) << path;
  // Set for this test only, whichever way it ends.
  struct Env {
    Env() { ::setenv("KILN_PERF_MAP", "1", 1); }
    ~Env() { ::unsetenv("KILN_PERF_MAP"); }
  };
  std::optional<Env> env(std::in_place);
  ASSERT_TRUE(perfMapRequested());
  test::Source src(R"(graph @g {
  %a = input {name = "a"} : f32[64, 64]
  %b = input {name = "b"} : f32[64, 64]
  %p = matmul %a, %b : f32[64, 64]
  %r = relu %p : f32[64, 64]
  %e = exp %r : f32[64, 64]
  return %e
})");
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g) << src.errors;
  for (unsigned threads : {1u, 2u}) {
    JITOptions opts;
    opts.threads = threads;
    auto jit = JIT::create(opts);
    ASSERT_TRUE(bool(jit)) << llvm::toString(jit.takeError());
    auto compiled = (*jit)->compile(*g);
    ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
  }
  env.reset();
  EXPECT_FALSE(perfMapRequested());
  auto buf = llvm::MemoryBuffer::getFile(path);
  ASSERT_TRUE(bool(buf)) << path;
  llvm::SmallVector<llvm::StringRef, 64> lines;
  llvm::StringRef added = (*buf)->getBuffer().drop_front(before);
  added.split(lines, '\n', -1, /*KeepEmpty=*/false);
  unsigned entries = 0, epilogues = 0, micro = 0;
  for (llvm::StringRef line : lines) {
    llvm::SmallVector<llvm::StringRef, 3> f;
    line.split(f, ' ');
    ASSERT_EQ(f.size(), 3u) << line.str();
    uint64_t start = 0, size = 0;
    EXPECT_FALSE(f[0].getAsInteger(16, start)) << line.str();
    EXPECT_FALSE(f[1].getAsInteger(16, size)) << line.str();
    EXPECT_NE(start, 0u) << line.str();
    EXPECT_GT(size, 0u) << line.str();
    entries += f[2] == "kiln_step";
    epilogues += f[2].starts_with("k") && f[2].ends_with(".fused.epilogue");
    micro += f[2].starts_with("kiln.gemm.kernel");
  }
  // Each JIT linked its entry point, the GEMM's epilogue (relu and exp)
  // and its own GEMM micro-kernels.
  EXPECT_EQ(entries, 2u) << added.str();
  EXPECT_EQ(epilogues, 2u) << added.str();
  EXPECT_GE(micro, 2u) << added.str();
  // Later JITs of this process (none asks for the map) write nothing.
  llvm::sys::fs::remove(path);
}

} // namespace
