//===- Setup.h - What the training-step benchmarks share -------*- C++ -*-===//
//
// A model's training step as `kiln train` builds it, the synthetic data the
// steps read, and the statistics every side of a comparison reports the same
// way. TrainBench.cpp (Kiln) and TorchBench.cpp (LibTorch) both use them, so
// the two sides get the same batches in the same order and the same initial
// parameters.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_BENCH_SETUP_H
#define KILN_BENCH_SETUP_H

#include "frontend/Train.h"
#include "ir/Graph.h"
#include "runtime/Data.h"
#include "support/Diagnostics.h"
#include "llvm/Support/SourceMgr.h"
#include <benchmark/benchmark.h>
#include <memory>
#include <string>
#include <vector>

namespace kiln::bench {

/// models/NAME.kiln (or NAME.kiln when NAME holds a '/', from the source
/// tree) lowered at its train block's batch size, with the training
/// passes run, with (or without) its optimizer. `error` says what failed.
struct TrainSetup {
  llvm::SourceMgr sm;
  std::unique_ptr<Diagnostics> diags;
  std::unique_ptr<Graph> graph;
  TrainConfig config;
  std::string error;

  TrainSetup(const std::string &name, bool optimizer);
};

/// The examples every training-step benchmark reads: 10,000 random images
/// of `size` values in [0, 1) with labels 0-9, and the order they are drawn
/// in (shuffled with seed 1, as `kiln train --seed 1`'s first epoch).
struct BenchData {
  Dataset data;
  std::vector<int64_t> order;

  explicit BenchData(int64_t size);
  /// The rows of the batch after `at`, wrapping to 0 at the end.
  llvm::ArrayRef<int64_t> next(int64_t &at, int64_t batch) const;
};

/// The floating-point operations of a step's matrix products: each matmul
/// and convolution (as the GEMM it is), 2 per multiply-add.
double gemmFlops(const Graph &g);

/// The median of `v` (the upper one of an even count); 0 when empty.
double median(std::vector<double> v);

/// The thread counts a benchmark runs with (its `threads` argument): 1
/// and, on a machine with more cores, all the process may use.
void threadCounts(benchmark::internal::Benchmark *b);

/// threadCounts for a training step: wall time (with threads, the calling
/// thread's CPU time is not the step's), in milliseconds.
void stepThreadCounts(benchmark::internal::Benchmark *b);

/// Steps each training-step benchmark runs before it times any: the first
/// pays page faults and the optimizer's lazily made state.
constexpr int kWarmupSteps = 5;

/// What a training-step benchmark saw: the objective of each warm-up step
/// and the wall time of each timed step.
struct StepRecord {
  std::vector<double> losses;
  std::vector<double> seconds;
};

/// The counters both sides report for a training step: `total_ms`, the
/// median timed step; `images_per_s` at that time; `steps`, the steps it is
/// the median of; and `loss1`..`loss5`, the objective of the warm-up steps,
/// which agree between Kiln and LibTorch when both do the same work.
void reportStep(benchmark::State &state, const StepRecord &record,
                int64_t batch);

/// GEMM counters: `GFLOPS` (over the benchmark's time), `peak_GFLOPS`, the
/// measured peak of `threads` cores at once, and `peak_pct`, the one over
/// the other.
void reportGemm(benchmark::State &state, int64_t m, int64_t n, int64_t k,
                unsigned threads);

/// The GEMM benchmarks' arguments {M, N, K, transA, transB, threads}: the
/// 1024^3 target and the MLP's first layer (x [128,784] @ w [784,256])
/// forward, dX = g w^T and dW = x^T g, at one thread and, `withThreads`,
/// at all cores too.
void gemmShapes(benchmark::internal::Benchmark *b, bool withThreads);

} // namespace kiln::bench

#endif
