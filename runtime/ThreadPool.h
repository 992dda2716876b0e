//===- ThreadPool.h - Static work splitting over a fixed pool ---*- C++ -*-===//
//
// The runtime's threads. parallelFor splits [0, n) into one contiguous chunk
// per thread, the same chunks for the same n and thread count, so a kernel
// whose chunks do not share accumulators gives bitwise identical results for
// a fixed thread count (and in practice for any, since Kiln's kernels never
// split a reduction across chunks).
//
// A training step hands the pool one kernel after another, tens of
// microseconds apart, so waking a sleeping thread (a futex wait and a
// reschedule) for each would cost as much as the kernels gain. Threads
// therefore can spin, for up to a set time, before they sleep: the workers
// while they wait for the next job, the caller while it waits for the workers
// to finish (as OpenMP runtimes do). On a machine busy with other work,
// spinning threads lose the cores to it; the pool then stops spinning (see
// parallelFor).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_THREADPOOL_H
#define KILN_RUNTIME_THREADPOOL_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace kiln {

class ThreadPool {
public:
  /// A pool of `threads` threads in all, the caller's included (0: one per
  /// core), whose threads spin for up to `spin` before they sleep (by
  /// default defaultSpin()).
  explicit ThreadPool(unsigned threads = 0,
                      std::optional<std::chrono::microseconds> spin = {});
  ~ThreadPool();
  ThreadPool(const ThreadPool &) = delete;
  ThreadPool &operator=(const ThreadPool &) = delete;

  unsigned size() const { return workers_.size() + 1; }

  /// Calls fn(begin, end) over chunks covering [0, n), in parallel. Chunks
  /// are at least `grain` long (the last may be shorter), so small loops stay
  /// on the calling thread. Calls from several threads take turns. Not
  /// reentrant: fn must not call parallelFor.
  void parallelFor(int64_t n, int64_t grain,
                   llvm::function_ref<void(int64_t, int64_t)> fn);

  /// How parallelFor(n, grain, fn) cuts [0, n): into chunkCount chunks, of
  /// which chunk i is chunkBounds(n, chunks, i).
  unsigned chunkCount(int64_t n, int64_t grain) const;
  static std::pair<int64_t, int64_t> chunkBounds(int64_t n, unsigned chunks,
                                                 unsigned i) {
    return {n * i / chunks, n * (i + 1) / chunks};
  }

  /// Cores this process may run on.
  static unsigned hardwareThreads();

  /// KILN_THREAD_SPIN_US microseconds from the environment (0 to 10^6),
  /// read once, or else kDefaultSpinUs.
  static std::chrono::microseconds defaultSpin();
  /// Long enough to bridge the gaps between one training step's parallel
  /// kernels (docs/codegen.md, "Threads and determinism").
  static constexpr long kDefaultSpinUs = 200;

private:
  void work(unsigned index);
  void runChunk(unsigned index);

  /// How long a thread polls before it sleeps.
  std::chrono::microseconds spinTime_;

  std::vector<std::thread> workers_;
  std::mutex callers_; ///< held by parallelFor for its whole call
  std::mutex mutex_;   ///< guards sleeping and waking
  std::condition_variable wake_, done_;
  /// Bumped (under mutex_, after the job is set) for each job.
  std::atomic<uint64_t> generation_{0};
  /// Workers yet to finish the current job.
  std::atomic<unsigned> pending_{0};
  std::atomic<bool> stopping_{false};
  /// Whether threads spin before they sleep, and what decides it (under
  /// callers_): the waits in a row that outlasted the spin, and the jobs run
  /// since spinning stopped.
  std::atomic<bool> spin_{true};
  static constexpr int kLateLimit = 4, kProbe = 64;
  int late_ = 0;
  unsigned probes_ = 0;
  // The job being run.
  llvm::function_ref<void(int64_t, int64_t)> job_;
  int64_t n_ = 0;
  unsigned chunks_ = 0;
};

} // namespace kiln

#endif
