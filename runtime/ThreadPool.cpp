//===- ThreadPool.cpp - Static work splitting over a fixed pool -----------===//

#include "runtime/ThreadPool.h"
#include <algorithm>
#include <sched.h>
#include <system_error>

using namespace kiln;

unsigned ThreadPool::hardwareThreads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(unsigned threads) {
  if (threads == 0)
    threads = hardwareThreads();
  // If the system runs out of threads, the pool keeps those it started:
  // results do not depend on the count, only the speed does.
  for (unsigned i = 1; i < threads; ++i) {
    try {
      workers_.emplace_back([this, i] { work(i); });
    } catch (const std::system_error &) {
      break;
    }
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread &t : workers_)
    t.join();
}

/// Polls `ready` for up to `limit`; whether it became true.
template <typename Ready>
static bool spinUntil(Ready ready, std::chrono::microseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready())
        return true;
      __builtin_ia32_pause();
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return ready();
  }
}

void ThreadPool::runChunk(unsigned index) {
  if (index >= chunks_)
    return;
  int64_t begin = n_ * index / chunks_, end = n_ * (index + 1) / chunks_;
  if (begin < end)
    job_(begin, end);
}

void ThreadPool::work(unsigned index) {
  uint64_t seen = 0;
  for (;;) {
    // The acquire load that sees a new generation also sees the job that
    // parallelFor set before it.
    auto fresh = [&] {
      return stopping_.load(std::memory_order_relaxed) ||
             generation_.load(std::memory_order_acquire) != seen;
    };
    if (!spinUntil(fresh, kSpin)) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, fresh);
    }
    if (stopping_)
      return;
    seen = generation_.load(std::memory_order_acquire);
    runChunk(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // The caller may be asleep: wake it under the lock it sleeps with.
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_one();
    }
  }
}

void ThreadPool::parallelFor(int64_t n, int64_t grain,
                             llvm::function_ref<void(int64_t, int64_t)> fn) {
  if (n <= 0)
    return;
  int64_t byGrain = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  unsigned chunks = unsigned(std::min<int64_t>(size(), byGrain));
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> turn(callers_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = fn;
    n_ = n;
    chunks_ = chunks;
    pending_.store(unsigned(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  runChunk(0);
  auto finished = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spinUntil(finished, kSpin)) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, finished);
  }
}
