//===- ThreadPool.h - Static work splitting over a fixed pool ---*- C++ -*-===//
//
// The runtime's threads. parallelFor splits [0, n) into one contiguous chunk
// per thread, the same chunks for the same n and thread count, so a kernel
// whose chunks do not share accumulators gives bitwise identical results for
// a fixed thread count (and in practice for any, since Kiln's kernels never
// split a reduction across chunks).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_THREADPOOL_H
#define KILN_RUNTIME_THREADPOOL_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace kiln {

class ThreadPool {
public:
  /// A pool of `threads` threads in all, the caller's included (0: one per
  /// core).
  explicit ThreadPool(unsigned threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  unsigned size() const { return workers_.size() + 1; }

  /// Calls fn(begin, end) over chunks covering [0, n), in parallel. Chunks
  /// are at least `grain` long (the last may be shorter), so small loops stay
  /// on the calling thread. Not reentrant: fn must not call parallelFor.
  void parallelFor(int64_t n, int64_t grain,
                   llvm::function_ref<void(int64_t, int64_t)> fn);

  /// Cores this process may run on.
  static unsigned hardwareThreads();

private:
  void work(unsigned index);
  void runChunk(unsigned index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  unsigned pending_ = 0;
  bool stopping_ = false;
  // The job being run.
  llvm::function_ref<void(int64_t, int64_t)> job_;
  int64_t n_ = 0;
  unsigned chunks_ = 0;
};

} // namespace kiln

#endif
