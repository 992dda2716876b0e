//===- Files.cpp - Reading inputs with a bound, and the memory we may use -===//
//
// A regular file's size is known before it is read, so one larger than the
// limit costs nothing to refuse. Anything else is read in chunks, and the
// read stops one chunk past the limit. Memory limits are read from
// getrlimit and from cgroup v2's memory.max and memory.current (v1's
// memory.limit_in_bytes and memory.usage_in_bytes), for the process's
// cgroup and every ancestor of it, since a limit on a parent binds too.
//
//===----------------------------------------------------------------------===//
#include "support/Files.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace kiln;

static llvm::Error fileError(llvm::StringRef path, const llvm::Twine &why) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 path + ": " + why);
}

std::string kiln::byteSize(uint64_t bytes) {
  if (bytes >= uint64_t(1) << 30)
    return std::to_string(bytes >> 30) + " GiB";
  if (bytes >= uint64_t(1) << 20)
    return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= uint64_t(1) << 10)
    return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>>
kiln::readInput(llvm::StringRef path, uint64_t limit, llvm::StringRef what,
                uint64_t streamLimit) {
  if (path.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "'': an empty path names no file");
  bool stdinput = path == "-";
  int fd = stdinput ? 0 : ::open(path.str().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fileError(path, std::strerror(errno));
  auto closeIt = [&] {
    if (!stdinput)
      ::close(fd);
  };
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    closeIt();
    return fileError(path, std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    closeIt();
    return fileError(path, "is a directory");
  }
  bool regular = S_ISREG(st.st_mode);
  if (!regular && streamLimit)
    limit = streamLimit;
  auto tooLarge = [&] {
    return fileError(path, (regular ? "larger than " : "gives more than ") +
                               byteSize(limit) + ", the limit for " + what +
                               (regular ? "" : " read from a pipe or device"));
  };
  if (regular && uint64_t(st.st_size) > limit) {
    closeIt();
    return tooLarge();
  }
  // Read to the end, or one chunk past the limit: a regular file may grow
  // while it is read, and a stream has no size at all.
  std::string bytes;
  if (regular)
    bytes.reserve(size_t(st.st_size));
  constexpr size_t kChunk = 1 << 16;
  while (true) {
    size_t have = bytes.size();
    bytes.resize(have + kChunk);
    ssize_t n = ::read(fd, &bytes[have], kChunk);
    if (n < 0 && errno == EINTR) {
      bytes.resize(have);
      continue;
    }
    if (n < 0) {
      int err = errno;
      closeIt();
      return fileError(path, std::strerror(err));
    }
    bytes.resize(have + size_t(n));
    if (n == 0)
      break;
    if (bytes.size() > limit) {
      closeIt();
      return tooLarge();
    }
  }
  closeIt();
  return llvm::MemoryBuffer::getMemBufferCopy(bytes,
                                              stdinput ? "<stdin>" : path);
}

llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>>
kiln::readDataFile(llvm::StringRef path) {
  uint64_t memory = availableMemory().bytes;
  return readInput(path, memory, "a data file",
                   std::min(memory, kMaxStreamBytes));
}

/// A file of /proc or /sys, which stat says is empty (MemoryBuffer::getFile
/// would read nothing): read to its end; null if it cannot be read.
static std::unique_ptr<llvm::MemoryBuffer> readSmall(const std::string &path) {
  auto buf = readInput(path, 1 << 20, "a system file");
  if (!buf) {
    llvm::consumeError(buf.takeError());
    return nullptr;
  }
  return std::move(*buf);
}

/// The number in a one-line file such as memory.max; nullopt for "max", a
/// missing file or anything else.
static std::optional<uint64_t> readNumber(const std::string &path) {
  auto buf = readSmall(path);
  if (!buf)
    return std::nullopt;
  uint64_t v;
  if (llvm::StringRef(buf->getBuffer()).trim().getAsInteger(10, v))
    return std::nullopt;
  return v;
}

/// The least room any cgroup from the process's own to the root leaves.
static std::optional<uint64_t> cgroupRoom() {
  auto self = readSmall("/proc/self/cgroup");
  if (!self)
    return std::nullopt;
  std::optional<uint64_t> room;
  llvm::SmallVector<llvm::StringRef, 8> lines;
  llvm::StringRef(self->getBuffer()).split(lines, '\n', -1, false);
  for (llvm::StringRef line : lines) {
    // "0::/path" (v2), or "N:memory:/path" (v1).
    auto [id, rest] = line.split(':');
    auto [controllers, where] = rest.split(':');
    std::string root, limitFile, usageFile;
    if (id == "0" && controllers.empty()) {
      root = "/sys/fs/cgroup";
      limitFile = "memory.max";
      usageFile = "memory.current";
    } else if (llvm::is_contained(llvm::split(controllers, ','), "memory")) {
      root = "/sys/fs/cgroup/memory";
      limitFile = "memory.limit_in_bytes";
      usageFile = "memory.usage_in_bytes";
    } else {
      continue;
    }
    llvm::SmallString<256> dir(root);
    llvm::sys::path::append(dir, where);
    while (true) {
      std::string d(dir.str());
      if (auto limit = readNumber(d + "/" + limitFile)) {
        uint64_t used = readNumber(d + "/" + usageFile).value_or(0);
        uint64_t left = *limit > used ? *limit - used : 0;
        room = std::min(room.value_or(UINT64_MAX), left);
      }
      if (dir.size() <= root.size())
        break;
      llvm::sys::path::remove_filename(dir);
    }
  }
  return room;
}

MemoryLimit kiln::availableMemory() {
  long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGE_SIZE);
  MemoryLimit m{pages > 0 && pageSize > 0 ? uint64_t(pages) * uint64_t(pageSize)
                                          : UINT64_MAX,
                "this machine's memory"};
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    // Address space already mapped (code, libraries, stacks) counts too.
    uint64_t mapped = 0;
    if (auto statm = readSmall("/proc/self/statm")) {
      uint64_t vmPages;
      if (!llvm::StringRef(statm->getBuffer())
               .split(' ')
               .first.getAsInteger(10, vmPages))
        mapped = vmPages * uint64_t(pageSize > 0 ? pageSize : 4096);
    }
    uint64_t left = rl.rlim_cur > mapped ? rl.rlim_cur - mapped : 0;
    if (left < m.bytes)
      m = {left, "the address-space limit (ulimit -v)"};
  }
  if (auto room = cgroupRoom(); room && *room < m.bytes)
    m = {*room, "the cgroup's memory limit"};
  return m;
}
