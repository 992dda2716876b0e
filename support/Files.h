//===- Files.h - Bounded reads, and the memory we may use ------*- C++ -*-===//
//
// Every file Kiln reads comes from a user, and some paths never end:
// /dev/zero, /dev/urandom, a pipe that keeps writing. readInput reads at
// most a stated number of bytes and says so when the input holds more,
// instead of reading until memory runs out. availableMemory is what this
// process may still allocate: physical memory, less where RLIMIT_AS or the
// process's cgroup sets a lower limit.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_SUPPORT_FILES_H
#define KILN_SUPPORT_FILES_H

#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBuffer.h"
#include <cstdint>
#include <memory>
#include <string>

namespace kiln {

/// The most a model file or an IR file may hold.
constexpr uint64_t kMaxSourceBytes = uint64_t(64) << 20;
/// The most read from a data file that is not a regular file (a pipe, a
/// device), whose size cannot be checked before reading.
constexpr uint64_t kMaxStreamBytes = uint64_t(1) << 30;

/// The whole of `path` ("-" is standard input). A regular file larger than
/// `limit` bytes is refused before it is read; any other file is read until
/// its end or until it has given more than `streamLimit` bytes (`limit` if
/// 0), which is an error. `what` names the input in that error ("a model
/// file"). Errors start with `path`.
llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>>
readInput(llvm::StringRef path, uint64_t limit, llvm::StringRef what,
          uint64_t streamLimit = 0);

/// A data file (safetensors, IDX, CSV): a regular file up to the memory
/// this process may use, a stream up to kMaxStreamBytes.
llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>>
readDataFile(llvm::StringRef path);

/// What this process may still allocate, and which limit says so.
struct MemoryLimit {
  uint64_t bytes;
  /// "this machine's memory", "the address-space limit (ulimit -v)" or
  /// "the cgroup's memory limit".
  std::string source;
};
/// The machine's physical memory, or less under a soft RLIMIT_AS (less the
/// address space already mapped) or the memory limit of the process's
/// cgroup or one of its ancestors (less that cgroup's use).
MemoryLimit availableMemory();

/// `bytes` as "12 MiB" or "3 GiB" (rounded down; "N bytes" below 1 KiB).
std::string byteSize(uint64_t bytes);

} // namespace kiln

#endif
