//===- ThreadPool.cpp - Static work splitting over a fixed pool -----------===//

#include "runtime/ThreadPool.h"
#include <algorithm>
#include <cstdlib>
#include <sched.h>
#include <system_error>

using namespace kiln;

unsigned ThreadPool::hardwareThreads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(unsigned threads,
                       std::optional<std::chrono::microseconds> spin)
    : spinTime_(spin ? *spin : defaultSpin()) {
  spin_ = spinTime_.count() > 0;
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

std::chrono::microseconds ThreadPool::defaultSpin() {
  static const std::chrono::microseconds spin = [] {
    const char *env = std::getenv("KILN_THREAD_SPIN_US");
    long us = kDefaultSpinUs;
    if (env && *env) {
      char *end;
      long v = std::strtol(env, &end, 10);
      if (*end == 0 && v >= 0 && v <= 1000000)
        us = v;
    }
    return std::chrono::microseconds(us);
  }();
  return spin;
}

/// Polls `ready` for up to `limit`; whether it became true.
template <typename Ready>
static bool spinUntil(Ready ready, std::chrono::microseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready())
        return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause(); // lets the core's other thread run meanwhile
#endif
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return ready();
  }
}

void ThreadPool::runChunk(unsigned index) {
  if (index >= chunks_)
    return;
  auto [begin, end] = chunkBounds(n_, chunks_, index);
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
    if (!spin_.load(std::memory_order_relaxed) ||
        !spinUntil(fresh, spinTime_)) {
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

unsigned ThreadPool::chunkCount(int64_t n, int64_t grain) const {
  int64_t byGrain = std::max<int64_t>(1, n / std::max<int64_t>(1, grain));
  return unsigned(std::min<int64_t>(size(), byGrain));
}

void ThreadPool::parallelFor(int64_t n, int64_t grain,
                             llvm::function_ref<void(int64_t, int64_t)> fn) {
  if (n <= 0)
    return;
  unsigned chunks = chunkCount(n, grain);
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
  // Spinning pays only when the workers run the moment a job comes: on a
  // machine with more runnable threads than cores, a spinning thread uses
  // up its share and its workers are preempted, and every wait outlasts the
  // spin. After kLateLimit such waits in a row threads only sleep, and one
  // job in kProbe spins again to see whether the cores are free again.
  bool spin =
      spinTime_.count() > 0 && (late_ < kLateLimit || ++probes_ % kProbe == 0);
  spin_.store(spin, std::memory_order_relaxed);
  if (spin && spinUntil(finished, spinTime_)) {
    late_ = 0;
    return;
  }
  if (spin)
    late_ = std::min(late_ + 1, kLateLimit);
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, finished);
  }
}
