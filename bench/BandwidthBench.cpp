//===- BandwidthBench.cpp - Elementwise kernels against STREAM's triad ----===//
//
// Memory-bound kernels, in GB/s of the bytes they must move (each input read
// once, the result written once), over arrays of 2^24 floats (64 MiB each,
// past any cache here), at one thread and at all cores:
//
// - `streamTriad`: STREAM's triad a = b + s * c in C++, compiled for this
//   CPU, split over std::threads: the machine's attainable bandwidth.
// - `kilnElementwise/triad`: the same triad as a Kiln graph, JIT-compiled
//   through the kernel passes (one fused elementwise kernel).
// - `kilnElementwise/chain`: relu(a * b + c) * 0.5, four ops that fuse into
//   one kernel reading three arrays and writing one.
//
//   build/bin/kiln-bench --benchmark_filter='streamTriad|kilnElementwise'
//
//===----------------------------------------------------------------------===//
#include "Setup.h"
#include "codegen/JIT.h"
#include "ir/IRParser.h"
#include "passes/Pipeline.h"
#include "runtime/Session.h"
#include "llvm/Support/MemoryBuffer.h"
#include <benchmark/benchmark.h>
#include <cstdlib>
#include <thread>

using namespace kiln;

namespace {

constexpr int64_t Elems = int64_t(1) << 24;

/// 64-byte aligned floats, touched so that no timed run pays page faults.
struct Array {
  float *p;
  explicit Array(float v)
      : p(static_cast<float *>(std::aligned_alloc(64, Elems * 4))) {
    std::fill(p, p + Elems, v);
  }
  ~Array() { std::free(p); }
};

void setBytes(benchmark::State &state, int arrays) {
  state.counters["GBps"] = benchmark::Counter(
      double(arrays) * Elems * 4, benchmark::Counter::kIsIterationInvariantRate,
      benchmark::Counter::kIs1000);
}

void streamTriad(benchmark::State &state) {
  unsigned threads = unsigned(state.range(0));
  Array a(0), b(1), c(2);
  const float s = 3;
  auto part = [&](unsigned t) {
    int64_t begin = Elems * t / threads, end = Elems * (t + 1) / threads;
    float *__restrict x = a.p;
    const float *__restrict y = b.p, *__restrict z = c.p;
    for (int64_t i = begin; i < end; ++i)
      x[i] = y[i] + s * z[i];
  };
  for (auto _ : state) {
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t)
      pool.emplace_back(part, t);
    part(0);
    for (std::thread &t : pool)
      t.join();
    benchmark::DoNotOptimize(a.p);
  }
  setBytes(state, 3);
}

const char *kTriad = R"(graph @triad {
  %a = input {name = "a"} : f32[16777216]
  %b = input {name = "b"} : f32[16777216]
  %s = constant {value = 3.0} : f32[16777216]
  %m = mul %b, %s : f32[16777216]
  %r = add %a, %m : f32[16777216]
  return %r
}
)";

const char *kChain = R"(graph @chain {
  %a = input {name = "a"} : f32[16777216]
  %b = input {name = "b"} : f32[16777216]
  %c = input {name = "c"} : f32[16777216]
  %m = mul %a, %b : f32[16777216]
  %s = add %m, %c : f32[16777216]
  %r = relu %s : f32[16777216]
  %h = constant {value = 0.5} : f32[16777216]
  %o = mul %r, %h : f32[16777216]
  return %o
}
)";

void kilnElementwise(benchmark::State &state, const char *text) {
  llvm::SourceMgr sm;
  unsigned id = sm.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBuffer(text, "bandwidth.kir"), llvm::SMLoc());
  Diagnostics diags(sm);
  std::vector<std::unique_ptr<Graph>> graphs = parseIR(id, diags);
  auto kernels = kernelPipeline();
  if (graphs.size() != 1 || !kernels) {
    state.SkipWithError("the bandwidth graph does not parse");
    return;
  }
  Graph &g = *graphs[0];
  if (auto e = runPasses(g, *kernels, {}, llvm::nulls())) {
    state.SkipWithError(llvm::toString(std::move(e)).c_str());
    return;
  }
  JITOptions opts;
  opts.threads = unsigned(state.range(0));
  auto jit = JIT::create(opts);
  if (!jit) {
    state.SkipWithError(llvm::toString(jit.takeError()).c_str());
    return;
  }
  auto compiled = (*jit)->compile(g);
  if (!compiled) {
    state.SkipWithError(llvm::toString(compiled.takeError()).c_str());
    return;
  }
  auto step = JITStep::create(*compiled);
  if (!step) {
    state.SkipWithError(llvm::toString(step.takeError()).c_str());
    return;
  }
  std::vector<std::unique_ptr<Array>> inputs;
  for (size_t i = 0; i < (*step)->leaves().size(); ++i) {
    inputs.push_back(std::make_unique<Array>(float(i + 1)));
    (*step)->bind(i, inputs.back()->p);
  }
  for (auto _ : state) {
    if (auto e = (*step)->run(0, 0)) {
      state.SkipWithError(llvm::toString(std::move(e)).c_str());
      return;
    }
    benchmark::DoNotOptimize((*step)->output());
  }
  int64_t kernelCount = 0;
  for (auto &n : g.nodes)
    kernelCount += n->op == Op::Fused;
  state.counters["fused_kernels"] = double(kernelCount);
  setBytes(state, int(inputs.size()) + 1);
}

} // namespace

BENCHMARK(streamTriad)->Apply(bench::threadCounts)->UseRealTime();
BENCHMARK_CAPTURE(kilnElementwise, triad, kTriad)
    ->Apply(bench::threadCounts)
    ->UseRealTime();
BENCHMARK_CAPTURE(kilnElementwise, chain, kChain)
    ->Apply(bench::threadCounts)
    ->UseRealTime();
