//===- FilesTest.cpp - Bounded reads and the memory limit -----------------===//
//
// readInput refuses a regular file over its limit before reading it, stops
// a stream one chunk past the limit, and names the path; availableMemory
// and checkMemory honour RLIMIT_AS (checked in a child process, which the
// limit cannot outlive).
//
//===----------------------------------------------------------------------===//
#include "support/Files.h"
#include "ir/Tensor.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace kiln;

namespace {

std::string errorOf(llvm::StringRef path, uint64_t limit,
                    uint64_t streamLimit = 0) {
  auto r = readInput(path, limit, "a test file", streamLimit);
  if (r)
    return "";
  return llvm::toString(r.takeError());
}

TEST(Files, RegularFilesOverTheLimitAreRefusedAndTheRestReadWhole) {
  llvm::SmallString<128> path;
  int fd;
  ASSERT_FALSE(
      llvm::sys::fs::createTemporaryFile("kiln-files", "txt", fd, path));
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << std::string(3000, 'k');
  }
  auto whole = readInput(path, 3000, "a test file");
  ASSERT_TRUE(bool(whole)) << llvm::toString(whole.takeError());
  EXPECT_EQ((*whole)->getBuffer(), std::string(3000, 'k'));
  EXPECT_EQ(errorOf(path, 2999),
            path.str().str() +
                ": larger than 2 KiB, the limit for a test file");
  llvm::sys::fs::remove(path);
}

TEST(Files, StreamsStopAtTheirLimit) {
  // /dev/zero never ends; the regular-file limit does not apply to it.
  EXPECT_EQ(errorOf("/dev/zero", 1 << 30, 1 << 20),
            "/dev/zero: gives more than 1 MiB, the limit for a test file "
            "read from a pipe or device");
  EXPECT_EQ(errorOf("", 10), "'': an empty path names no file");
  EXPECT_EQ(errorOf("/", 10), "/: is a directory");
  EXPECT_EQ(errorOf("/nonexistent/kiln", 10),
            "/nonexistent/kiln: No such file or directory");
}

TEST(Files, AnAddressSpaceLimitBoundsTheMemoryChecks) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Mapped now, plus 256 MiB: what is left is about 256 MiB. The reads
    // of /proc/self/statm map and unmap buffers of their own (64 KiB seen
    // here), so "about" allows 1 MiB either way.
    auto statm = readInput("/proc/self/statm", 4096, "statm");
    uint64_t pages = 0;
    if (!statm || llvm::StringRef((*statm)->getBuffer())
                      .split(' ')
                      .first.getAsInteger(10, pages))
      _exit(10);
    uint64_t limit = pages * uint64_t(sysconf(_SC_PAGE_SIZE)) + (256 << 20);
    struct rlimit rl = {limit, limit};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
      _exit(11);
    MemoryLimit m = availableMemory();
    if (m.bytes > uint64_t(257) << 20 || m.bytes < uint64_t(255) << 20)
      _exit(12);
    if (m.source != "the address-space limit (ulimit -v)")
      _exit(13);
    llvm::Error e = checkMemory(uint64_t(1) << 30, "a test");
    std::string msg = e ? llvm::toString(std::move(e)) : "";
    if (msg.rfind("a test needs 1 GiB, more than the ", 0) != 0 ||
        msg.find(" left under the address-space limit (ulimit -v)") ==
            std::string::npos)
      _exit(14);
    _exit(checkMemory(uint64_t(1) << 20, "a test") ? 15 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

} // namespace
