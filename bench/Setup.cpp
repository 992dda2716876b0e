//===- Setup.cpp - What the training-step benchmarks share ----------------===//
//
// Kiln's and LibTorch's benchmarks take their model, data, shapes, thread
// counts and counters from here, so that the two sides differ only in the
// code that runs the step.
//
//===----------------------------------------------------------------------===//
#include "Setup.h"
#include "Peak.h"
#include "frontend/Lower.h"
#include "frontend/Parser.h"
#include "passes/Pipeline.h"
#include "runtime/Batches.h"
#include "runtime/ThreadPool.h"
#include "llvm/Support/MemoryBuffer.h"
#include <algorithm>

using namespace kiln;
using namespace kiln::bench;

TrainSetup::TrainSetup(const std::string &name, bool optimizer) {
  std::string path = std::string(KILN_SOURCE_DIR) + "/" +
                     (name.find('/') == std::string::npos ? "models/" : "") +
                     name + ".kiln";
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf) {
    error = "cannot read " + path;
    return;
  }
  unsigned id = sm.AddNewSourceBuffer(std::move(*buf), llvm::SMLoc());
  diags = std::make_unique<Diagnostics>(sm);
  Module m = parseModule(id, *diags);
  std::vector<TrainConfig> trains = checkTrainBlocks(m, *diags);
  if (trains.empty()) {
    error = "no train block in " + path;
    return;
  }
  config = trains[0];
  LowerOptions opts;
  opts.dims["N"] = config.batch;
  graph = lowerModel(m, *m.findFunc(config.model), opts, *diags);
  if (!graph) {
    error = "cannot lower " + path;
    return;
  }
  TrainingOptions t;
  if (optimizer)
    t.optimizer = &config.optimizer;
  t.dropGradients = true; // as kiln train
  auto steps = trainingPipeline(t);
  if (!steps) {
    error = llvm::toString(steps.takeError());
    return;
  }
  if (auto e = runPasses(*graph, *steps, {}, llvm::nulls()))
    error = llvm::toString(std::move(e));
}

BenchData::BenchData(int64_t size) {
  constexpr int64_t N = 10000;
  data.images = Tensor(DType::F32, {N, size});
  data.labels = Tensor(DType::I32, {N});
  Rng rng(1, RngStream::Shuffle, 0);
  for (int64_t i = 0; i < N * size; ++i)
    data.images.data<float>()[i] = float(rng.uniform());
  for (int64_t i = 0; i < N; ++i)
    data.labels.data<int32_t>()[i] = int32_t(rng.below(10));
  order = shuffled(N, 1, RngStream::Shuffle, 0);
}

llvm::ArrayRef<int64_t> BenchData::next(int64_t &at, int64_t batch) const {
  if (at + batch > int64_t(order.size()))
    at = 0;
  llvm::ArrayRef<int64_t> rows(&order[at], batch);
  at += batch;
  return rows;
}

double kiln::bench::gemmFlops(const Graph &g) {
  double flops = 0;
  for (auto &n : g.nodes) {
    double out = double(*numElements(n->type.shape));
    if (n->op == Op::MatMul)
      flops += 2 * out * double(n->operands[0]->type.shape.back());
    else if (n->op == Op::Conv2d) {
      const Shape &w = n->operands[1]->type.shape;
      flops += 2 * out * double(w[1] * w[2] * w[3]);
    }
  }
  return flops;
}

double kiln::bench::median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void kiln::bench::threadCounts(benchmark::internal::Benchmark *b) {
  b->ArgName("threads")->Arg(1);
  unsigned cores = ThreadPool::hardwareThreads();
  if (cores > 1)
    b->Arg(cores);
}

void kiln::bench::gemmShapes(benchmark::internal::Benchmark *b,
                             bool withThreads) {
  b->ArgNames({"M", "N", "K", "tA", "tB", "threads"});
  int64_t cores = ThreadPool::hardwareThreads();
  for (int64_t threads : {int64_t(1), cores}) {
    if (threads > 1 && !withThreads)
      break;
    b->Args({1024, 1024, 1024, 0, 0, threads});
    b->Args({128, 256, 784, 0, 0, threads});
    b->Args({128, 784, 256, 0, 1, threads});
    b->Args({784, 256, 128, 1, 0, threads});
    if (cores <= 1)
      break;
  }
  // Rates over wall time: with threads, the calling thread's CPU time is
  // not the GEMM's.
  b->UseRealTime();
  b->Unit(benchmark::kMicrosecond);
}

void kiln::bench::stepThreadCounts(benchmark::internal::Benchmark *b) {
  threadCounts(b);
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

void kiln::bench::reportStep(benchmark::State &state, const StepRecord &record,
                             int64_t batch) {
  double step = median(record.seconds);
  state.counters["total_ms"] = 1e3 * step;
  state.counters["images_per_s"] = step > 0 ? double(batch) / step : 0;
  state.counters["steps"] = double(record.seconds.size());
  for (size_t k = 0; k < record.losses.size(); ++k)
    state.counters["loss" + std::to_string(k + 1)] = record.losses[k];
}

void kiln::bench::reportGemm(benchmark::State &state, int64_t m, int64_t n,
                             int64_t k, unsigned threads) {
  double flops = 2.0 * double(m) * double(n) * double(k);
  state.counters["GFLOPS"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
  state.counters["peak_GFLOPS"] = measuredPeak(threads);
  state.counters["peak_pct"] =
      benchmark::Counter(flops * 1e-9 / measuredPeak(threads) * 100,
                         benchmark::Counter::kIsIterationInvariantRate);
}
