//===- ThreadPoolTest.cpp - The runtime's static work splitting -----------===//
#include "runtime/ThreadPool.h"
#include <chrono>
#include <gtest/gtest.h>
#include <thread>
#include <vector>

using namespace kiln;

namespace {

/// Runs parallelFor(n, grain) and returns how often each index was visited
/// and the chunks, as (begin, end) pairs, in order of begin.
std::vector<int> visits(ThreadPool &pool, int64_t n, int64_t grain,
                        std::vector<std::pair<int64_t, int64_t>> *chunks) {
  std::vector<int> seen(n, 0);
  std::mutex m;
  pool.parallelFor(n, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      ++seen[i]; // chunks are disjoint, so no two threads share an index
    std::lock_guard<std::mutex> lock(m);
    if (chunks)
      chunks->push_back({b, e});
  });
  if (chunks)
    std::sort(chunks->begin(), chunks->end());
  return seen;
}

} // namespace

using std::chrono::microseconds;

/// Each test runs with threads that sleep at once and with threads that
/// spin first.
class ThreadPoolSpin : public ::testing::TestWithParam<int> {
protected:
  microseconds spin() const { return microseconds(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(, ThreadPoolSpin, ::testing::Values(0, 200),
                         [](const auto &info) {
                           return "spin" + std::to_string(info.param) + "us";
                         });

TEST_P(ThreadPoolSpin, EveryIndexOnceInFixedContiguousChunks) {
  ThreadPool pool(3, spin());
  ASSERT_EQ(pool.size(), 3u);
  std::vector<std::pair<int64_t, int64_t>> chunks;
  std::vector<int> seen = visits(pool, 10, 1, &chunks);
  EXPECT_EQ(seen, std::vector<int>(10, 1));
  // n * i / chunks: [0, 3), [3, 6), [6, 10).
  std::vector<std::pair<int64_t, int64_t>> want = {{0, 3}, {3, 6}, {6, 10}};
  EXPECT_EQ(chunks, want);
  // chunkCount and chunkBounds tell callers (the GEMM's choice of split)
  // these same chunks.
  ASSERT_EQ(pool.chunkCount(10, 1), 3u);
  for (unsigned i = 0; i < 3; ++i)
    EXPECT_EQ(ThreadPool::chunkBounds(10, 3, i), want[i]) << "chunk " << i;
  // A grain larger than half the range keeps it in one chunk.
  chunks.clear();
  visits(pool, 10, 6, &chunks);
  EXPECT_EQ(chunks, (std::vector<std::pair<int64_t, int64_t>>{{0, 10}}));
  EXPECT_EQ(pool.chunkCount(10, 6), 1u);
  // Fewer items than threads: one chunk each.
  EXPECT_EQ(pool.chunkCount(2, 1), 2u);
}

TEST_P(ThreadPoolSpin, BackToBackJobsAndJobsAfterTheWorkersSleep) {
  // Jobs in quick succession (the workers spinning between them) and after
  // a pause longer than the spin (the workers asleep) all run in full.
  ThreadPool pool(2, spin());
  for (int round = 0; round < 2; ++round) {
    for (int job = 0; job < 2000; ++job) {
      int64_t n = 1 + job % 97;
      ASSERT_EQ(visits(pool, n, 1, nullptr), std::vector<int>(n, 1))
          << "job " << job;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

TEST_P(ThreadPoolSpin, TheCallerSleepsUntilASlowChunkEnds) {
  // The last chunk takes longer than the caller spins, so the caller must
  // sleep and be woken by the worker that finishes it.
  ThreadPool pool(2, spin());
  for (int job = 0; job < 20; ++job) {
    std::atomic<int> done{0};
    pool.parallelFor(2, 1, [&](int64_t b, int64_t) {
      if (b == 1)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      ++done;
    });
    ASSERT_EQ(done.load(), 2) << "job " << job;
  }
}

TEST_P(ThreadPoolSpin, CallersOnSeveralThreadsTakeTurns) {
  ThreadPool pool(2, spin());
  std::vector<std::thread> callers;
  std::vector<int> failures(4, 0);
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&, c] {
      for (int job = 0; job < 500; ++job) {
        int64_t n = 16 + (job + c) % 50;
        if (visits(pool, n, 1, nullptr) != std::vector<int>(n, 1))
          ++failures[c];
      }
    });
  for (std::thread &t : callers)
    t.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST_P(ThreadPoolSpin, OneThreadRunsOnTheCaller) {
  ThreadPool pool(1, spin());
  std::thread::id caller = std::this_thread::get_id(), ran;
  pool.parallelFor(100, 1, [&](int64_t b, int64_t e) {
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 100);
    ran = std::this_thread::get_id();
  });
  EXPECT_EQ(ran, caller);
}
