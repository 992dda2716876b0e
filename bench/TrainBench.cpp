//===- TrainBench.cpp - The training step and what surrounds it -----------===//
//
// A training session's step as `kiln train` runs it, split into its two
// parts and timed call by call: the work outside the compiled code (the
// shuffled batch's gather into the input buffers, the optimizer's scalars)
// and the compiled step itself (forward, backward and the optimizer's
// update), for the MLP, the CNN and the ResNet. Counters: `outside_pct`,
// the outside share of the compiled step's time, the median milliseconds of
// each part, and the step counters of Setup.h's reportStep (`total_ms`, the
// whole iteration LibTorch's step is compared with, `images_per_s`, the
// objectives `loss1`...). `forwardBackward` is the compiled gradient step
// alone (no optimizer), the step `kiln grad` runs. `compileStep` times
// compiling a training step.
//
//   build/bin/kiln-bench --benchmark_filter=session
//
//===----------------------------------------------------------------------===//
#include "Peak.h"
#include "Setup.h"
#include "codegen/JIT.h"
#include "frontend/Lower.h"
#include "frontend/Parser.h"
#include "passes/Pipeline.h"
#include "runtime/Batches.h"
#include "runtime/Gradients.h"
#include "runtime/Session.h"
#include "llvm/Support/MemoryBuffer.h"
#include <benchmark/benchmark.h>
#include <chrono>

using namespace kiln;
using namespace kiln::bench;

namespace {

using Clock = std::chrono::steady_clock;

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
  BenchData data(*numElements(inputs[0]->type.shape) / batch);
  int64_t at = 0;
  // One step; its objective, and the seconds before and in the compiled
  // code.
  double outsideS = 0, insideS = 0;
  auto step = [&]() -> llvm::Expected<double> {
    auto t0 = Clock::now();
    gatherBatch(data.data, data.next(at, batch),
                static_cast<float *>(session.input(i, x)),
                static_cast<int32_t *>(session.input(i, y)));
    int64_t t = session.stepCount + 1;
    std::vector<double> v =
        s.config.optimizer.scalars(s.config.optimizer.arg("lr"), t);
    for (size_t k = 0; k < scalars.size(); ++k)
      *static_cast<float *>(session.input(i, scalars[k])) = float(v[k]);
    session.stepCount = t;
    auto t1 = Clock::now();
    if (auto e = session.run(i, 1))
      return std::move(e);
    double loss = session.step(i).objective();
    benchmark::DoNotOptimize(loss);
    auto t2 = Clock::now();
    outsideS = std::chrono::duration<double>(t1 - t0).count();
    insideS = std::chrono::duration<double>(t2 - t1).count();
    return loss;
  };
  StepRecord record;
  for (int w = 0; w < kWarmupSteps; ++w) {
    auto loss = step();
    if (!loss) {
      state.SkipWithError(llvm::toString(loss.takeError()).c_str());
      return;
    }
    record.losses.push_back(*loss);
  }
  std::vector<double> outside, inside;
  for (auto _ : state) {
    auto loss = step();
    if (!loss) {
      state.SkipWithError(llvm::toString(loss.takeError()).c_str());
      return;
    }
    outside.push_back(outsideS);
    inside.push_back(insideS);
    record.seconds.push_back(outsideS + insideS);
  }
  double in = median(inside), out = median(outside);
  state.counters["step_ms"] = 1e3 * in;
  state.counters["outside_ms"] = 1e3 * out;
  state.counters["outside_pct"] = in > 0 ? 100 * out / in : 0;
  // The whole iteration, gather and scalars included, as LibTorch's step
  // (TorchBench.cpp) is timed.
  reportStep(state, record, batch);
  // The step's GEMM work at the rate of the threads' FMA peak, over the
  // step's time: the share of the step that is arithmetic it must do.
  double flops = gemmFlops(*s.graph);
  state.counters["gemm_GFLOP"] = flops * 1e-9;
  state.counters["peak_pct"] =
      in > 0 ? 100 * flops * 1e-9 / in / bench::measuredPeak(opts.threads) : 0;
}

/// Compiling the training step (with its optimizer) in a fresh JIT: the
/// manual time is the step's own compilation; the GEMM micro-kernels, which
/// a JIT compiles once for all its steps, are the `gemm_ms` counter, and
/// the front end and training passes before it (once) `frontend_ms`.
void compileStep(benchmark::State &state, const std::string &model) {
  auto start = Clock::now();
  TrainSetup s(model, true);
  double front = std::chrono::duration<double>(Clock::now() - start).count();
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
  // Reading, lowering and the training passes, before the JIT: the rest of
  // what `kiln train` does to compile a model.
  state.counters["frontend_ms"] = 1e3 * front;
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
void sessionResnet(benchmark::State &s) { session(s, "resnet", true); }

} // namespace

BENCHMARK_CAPTURE(compileStep, mlp, "mlp")
    ->Apply(threadCounts)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(compileStep, cnn, "cnn")
    ->Apply(threadCounts)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(compileStep, resnet, "resnet")
    ->Apply(threadCounts)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(compileStep, alexnet, "alexnet")
    ->Apply(threadCounts)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(compileStep, logistic_regression, "logistic_regression")
    ->Apply(threadCounts)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(compileStep, softmax_regression, "softmax_regression")
    ->Apply(threadCounts)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(compileStep, svm, "svm")
    ->Apply(threadCounts)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(compileStep, rnn100, "bench/models/rnn100")
    ->Apply(threadCounts)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(kernelPipelineChain, layers, false)->Apply(chainSizes);
BENCHMARK_CAPTURE(kernelPipelineChain, rnn, true)->Apply(chainSizes);
BENCHMARK(sessionMlp)->Apply(stepThreadCounts);
BENCHMARK(forwardBackwardMlp)->Apply(stepThreadCounts);
BENCHMARK(sessionCnn)->Apply(stepThreadCounts);
BENCHMARK(forwardBackwardCnn)->Apply(stepThreadCounts);
BENCHMARK(sessionResnet)->Apply(stepThreadCounts);
