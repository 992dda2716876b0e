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
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_)
        return;
      seen = generation_;
    }
    runChunk(index);
    std::lock_guard<std::mutex> lock(mutex_);
    if (--pending_ == 0)
      done_.notify_one();
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = fn;
    n_ = n;
    chunks_ = chunks;
    pending_ = workers_.size();
    ++generation_;
  }
  wake_.notify_all();
  runChunk(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
}
