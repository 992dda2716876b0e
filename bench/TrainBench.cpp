//===- TrainBench.cpp - The training step and what surrounds it -----------===//
//
// A training session's step as `kiln train` runs it, split into its two
// parts and timed call by call: the work outside the compiled code (the
// shuffled batch's gather into the input buffers, the optimizer's scalars)
// and the compiled step itself (forward, backward and the optimizer's
// update). Counters: `outside_pct`, the outside share of the compiled step's
// time (the bar is 5%), and the median milliseconds of each part.
// `forwardBackward` is the compiled gradient step alone (no optimizer), the
// step `kiln grad` runs. `compileStep` times compiling a training step.
//
//   build/bin/kiln-bench --benchmark_filter=session
//
//===----------------------------------------------------------------------===//
#include "Peak.h"
#include "codegen/JIT.h"
#include "frontend/Lower.h"
#include "frontend/Parser.h"
#include "frontend/Train.h"
#include "passes/Pipeline.h"
#include "runtime/Batches.h"
#include "runtime/Gradients.h"
#include "runtime/Session.h"
#include "llvm/Support/MemoryBuffer.h"
#include <benchmark/benchmark.h>
#include <chrono>

using namespace kiln;

namespace {

using Clock = std::chrono::steady_clock;

/// models/NAME.kiln's training step at its train block's batch size, with
/// (or without) its optimizer.
struct TrainSetup {
  llvm::SourceMgr sm;
  std::unique_ptr<Diagnostics> diags;
  std::unique_ptr<Graph> graph;
  TrainConfig config;
  std::string error;

  TrainSetup(const std::string &name, bool optimizer) {
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
      error = "no train block";
      return;
    }
    config = trains[0];
    LowerOptions opts;
    opts.dims["N"] = config.batch;
    graph = lowerModel(m, *m.findFunc(config.model), opts, *diags);
    if (!graph) {
      error = "cannot lower " + name;
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
};

/// The floating-point operations of a step's matrix products: each matmul
/// and convolution (as the GEMM it is), 2 per multiply-add.
double gemmFlops(const Graph &g) {
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

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

/// Random examples shaped like Fashion-MNIST's.
Dataset syntheticData(int64_t n, int64_t size) {
  Dataset d;
  d.images = Tensor(DType::F32, {n, size});
  d.labels = Tensor(DType::I32, {n});
  Rng rng(1, RngStream::Shuffle, 0);
  for (int64_t i = 0; i < n * size; ++i)
    d.images.data<float>()[i] = float(rng.uniform());
  for (int64_t i = 0; i < n; ++i)
    d.labels.data<int32_t>()[i] = int32_t(rng.below(10));
  return d;
}

void session(benchmark::State &state, const std::string &model,
             bool optimizer) {
  TrainSetup s(model, optimizer);
  if (!s.error.empty()) {
    state.SkipWithError(s.error.c_str());
    return;
  }
  JITOptions opts;
  opts.threads = unsigned(state.range(0));
  auto jit = JIT::create(opts);
  if (!jit) {
    state.SkipWithError(llvm::toString(jit.takeError()).c_str());
    return;
  }
  auto compiled = (*jit)->compile(*s.graph);
  if (!compiled) {
    state.SkipWithError(llvm::toString(compiled.takeError()).c_str());
    return;
  }
  Session session;
  size_t i = llvm::cantFail(
      session.attach(llvm::cantFail(JITStep::create(*compiled))));
  llvm::cantFail(session.load(initialParams(*s.graph, 1), /*partial=*/true));
  std::vector<Node *> inputs = s.graph->leaves(Op::Input);
  size_t x =
      llvm::cantFail(session.inputIndex(i, inputs[0]->stringAttr("name")));
  size_t y =
      llvm::cantFail(session.inputIndex(i, inputs[1]->stringAttr("name")));
  std::vector<size_t> scalars;
  if (optimizer)
    for (const std::string &n : s.config.optimizer.scalarNames())
      scalars.push_back(
          llvm::cantFail(session.inputIndex(i, optimizerInputName(n))));
  int64_t batch = s.config.batch;
  int64_t size = *numElements(inputs[0]->type.shape) / batch;
  Dataset data = syntheticData(10000, size);
  std::vector<int64_t> order = shuffled(data.size(), 1, RngStream::Shuffle, 0);
  std::vector<double> outside, inside;
  int64_t at = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    if (at + batch > data.size())
      at = 0;
    gatherBatch(data, llvm::ArrayRef<int64_t>(&order[at], batch),
                static_cast<float *>(session.input(i, x)),
                static_cast<int32_t *>(session.input(i, y)));
    at += batch;
    int64_t t = session.stepCount + 1;
    std::vector<double> v =
        s.config.optimizer.scalars(s.config.optimizer.arg("lr"), t);
    for (size_t k = 0; k < scalars.size(); ++k)
      *static_cast<float *>(session.input(i, scalars[k])) = float(v[k]);
    session.stepCount = t;
    auto t1 = Clock::now();
    if (auto e = session.run(i, 1)) {
      state.SkipWithError(llvm::toString(std::move(e)).c_str());
      return;
    }
    benchmark::DoNotOptimize(session.step(i).objective());
    auto t2 = Clock::now();
    outside.push_back(std::chrono::duration<double>(t1 - t0).count());
    inside.push_back(std::chrono::duration<double>(t2 - t1).count());
  }
  double in = median(inside), out = median(outside);
  state.counters["step_ms"] = 1e3 * in;
  state.counters["outside_ms"] = 1e3 * out;
  state.counters["outside_pct"] = in > 0 ? 100 * out / in : 0;
  // The step's GEMM work at the rate of the threads' FMA peak, over the
  // step's time: the share of the step that is arithmetic it must do.
  double flops = gemmFlops(*s.graph);
  state.counters["gemm_GFLOP"] = flops * 1e-9;
  state.counters["peak_pct"] =
      in > 0 ? 100 * flops * 1e-9 / in /
                   (bench::measuredPeak() * double(opts.threads))
             : 0;
  state.SetItemsProcessed(state.iterations() * batch);
}

/// Compiling the training step (with its optimizer) in a fresh JIT: the
/// manual time is the step's own compilation; the GEMM micro-kernels, which
/// a JIT compiles once for all its steps, are the `gemm_ms` counter.
void compileStep(benchmark::State &state, const std::string &model) {
  TrainSetup s(model, true);
  if (!s.error.empty()) {
    state.SkipWithError(s.error.c_str());
    return;
  }
  JITOptions opts;
  opts.threads = unsigned(state.range(0));
  std::vector<double> gemm;
  for (auto _ : state) {
    auto jit = JIT::create(opts);
    if (!jit) {
      state.SkipWithError(llvm::toString(jit.takeError()).c_str());
      return;
    }
    auto compiled = (*jit)->compile(*s.graph);
    if (!compiled) {
      state.SkipWithError(llvm::toString(compiled.takeError()).c_str());
      return;
    }
    const CompileTimes &t = compiled->times();
    state.SetIterationTime(t.total() - t.gemm);
    gemm.push_back(t.gemm);
  }
  state.counters["gemm_ms"] = 1e3 * median(gemm);
  state.counters["nodes"] = double(s.graph->nodes.size());
}

/// The kernel pipeline (fusion) on the training graph of a chain of N
/// steps: two-by-two layers `relu(x @ w)`, each with its own weight (some
/// 9N nodes whose 3N products each take an epilogue), or, `shared`, the
/// steps of an RNN `tanh(h @ wh + b)`, whose one bias every step's
/// epilogue reads. Run with several N, Google Benchmark fits the time's
/// order (`BigO`): a pass whose work grows faster than its graph shows as
/// N^2 here.
void kernelPipelineChain(benchmark::State &state, bool shared) {
  int64_t layers = state.range(0);
  std::string text;
  if (shared) {
    text = "model chain(x: f32[2,2]) {\n"
           "  param wh: f32[2,2] = ones()\n"
           "  param b: f32[2] = zeros()\n"
           "  let h = x\n"
           "  for t in 0.." +
           std::to_string(layers) +
           " {\n"
           "    let h = tanh(h @ wh + b)\n"
           "  }\n"
           "  minimize sum(h)\n"
           "}\n";
  } else {
    text = "layer d(x: f32[2,2]) {\n"
           "  param w: f32[2,2] = ones()\n"
           "  return relu(x @ w)\n"
           "}\n"
           "model chain(x: f32[2,2]) {\n"
           "  let a0 = d(x)\n";
    for (int64_t i = 1; i < layers; ++i)
      text += "  let a" + std::to_string(i) + " = d(a" + std::to_string(i - 1) +
              ")\n";
    text += "  minimize sum(a" + std::to_string(layers - 1) + ")\n}\n";
  }
  llvm::SourceMgr sm;
  unsigned id = sm.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(text, "chain.kiln"), llvm::SMLoc());
  Diagnostics diags(sm);
  Module m = parseModule(id, diags);
  auto training = lowerModel(m, *m.findFunc("chain"), {}, diags);
  auto steps = trainingPipeline();
  auto kernels = kernelPipeline();
  if (!training || !steps || !kernels) {
    state.SkipWithError("the chain model does not build");
    return;
  }
  if (auto e = runPasses(*training, *steps, {}, llvm::nulls())) {
    state.SkipWithError(llvm::toString(std::move(e)).c_str());
    return;
  }
  for (auto _ : state) {
    std::unique_ptr<Graph> g = cloneGraph(*training);
    auto start = std::chrono::steady_clock::now();
    if (auto e = runPasses(*g, *kernels, {}, llvm::nulls())) {
      state.SkipWithError(llvm::toString(std::move(e)).c_str());
      return;
    }
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count());
  }
  state.counters["nodes"] = double(training->nodes.size());
  state.SetComplexityN(layers);
}

/// 500 to 4000 steps, for the complexity fit.
void chainSizes(benchmark::internal::Benchmark *b) {
  b->ArgName("steps")->UseManualTime()->Unit(benchmark::kMillisecond);
  for (int64_t n : {500, 1000, 2000, 4000})
    b->Arg(n);
  b->Complexity();
}

void sessionMlp(benchmark::State &s) { session(s, "mlp", true); }
void sessionCnn(benchmark::State &s) { session(s, "cnn", true); }
void forwardBackwardMlp(benchmark::State &s) { session(s, "mlp", false); }
void forwardBackwardCnn(benchmark::State &s) { session(s, "cnn", false); }

} // namespace

BENCHMARK_CAPTURE(compileStep, mlp, "mlp")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(compileStep, cnn, "cnn")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(compileStep, rnn100, "bench/models/rnn100")
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(kernelPipelineChain, layers, false)->Apply(chainSizes);
BENCHMARK_CAPTURE(kernelPipelineChain, rnn, true)->Apply(chainSizes);
BENCHMARK(sessionMlp)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(forwardBackwardMlp)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(sessionCnn)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(forwardBackwardCnn)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond);
