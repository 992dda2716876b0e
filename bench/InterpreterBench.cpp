//===- InterpreterBench.cpp - Reference interpreter benchmarks ------------===//
//
// The reference interpreter's forward pass over models/ at their train-block
// batch sizes, in float32 and float64. It is the baseline the JIT is measured
// against: report ratios between runs of this binary, not absolute times.
//
//   build/bin/kiln-bench --benchmark_filter=mlp
//
//===----------------------------------------------------------------------===//
#include "codegen/JIT.h"
#include "frontend/Lower.h"
#include "frontend/Parser.h"
#include "passes/Autodiff.h"
#include "passes/Passes.h"
#include "passes/Pipeline.h"
#include "runtime/Init.h"
#include "runtime/Interpreter.h"
#include "llvm/Support/MemoryBuffer.h"
#include <benchmark/benchmark.h>

using namespace kiln;

namespace {

/// Lowers models/NAME.kiln with N = batch and random parameters and inputs.
struct Setup {
  llvm::SourceMgr sm;
  std::unique_ptr<Diagnostics> diags;
  std::unique_ptr<Graph> graph;
  llvm::StringMap<Tensor> leaves;

  Setup(const std::string &name, int64_t batch) {
    std::string path =
        std::string(KILN_SOURCE_DIR) + "/models/" + name + ".kiln";
    auto buf = llvm::MemoryBuffer::getFile(path);
    if (!buf)
      return;
    unsigned id = sm.AddNewSourceBuffer(std::move(*buf), llvm::SMLoc());
    diags = std::make_unique<Diagnostics>(sm);
    Module m = parseModule(id, *diags);
    LowerOptions opts;
    opts.dims["N"] = batch;
    for (const FuncDecl &f : m.funcs)
      if (f.isModel)
        graph = lowerModel(m, f, opts, *diags);
    if (!graph)
      return;
    std::mt19937_64 rng(0);
    for (auto &n : graph->nodes) {
      if (n->op == Op::Param || n->op == Op::State) {
        Tensor t(DType::F32, n->type.shape);
        runInit(*n, t, rng);
        leaves[n->stringAttr("name")] = std::move(t);
      } else if (n->op == Op::Input) {
        Tensor t(n->type.dtype, n->type.shape);
        for (int64_t i = 0; i < t.numel(); ++i)
          if (n->type.dtype == DType::I32)
            t.data<int32_t>()[i] = int32_t(rng() % 10);
          else
            t.data<float>()[i] = float(rng() % 256) / 255.0f;
        leaves[n->stringAttr("name")] = std::move(t);
      }
    }
  }
};

void forward(benchmark::State &state, const std::string &model, int64_t batch,
             DType precision) {
  Setup s(model, batch);
  if (!s.graph) {
    state.SkipWithError("could not lower the model");
    return;
  }
  for (auto _ : state) {
    auto values = interpret(*s.graph, s.leaves, {precision});
    if (!values) {
      state.SkipWithError(llvm::toString(values.takeError()).c_str());
      return;
    }
    benchmark::DoNotOptimize(values->back().raw());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

/// The whole training step (forward, backward) of a model, interpreted or
/// JIT-compiled with a vector width (0: LLVM's choice) and thread count.
void trainingStep(benchmark::State &state, const std::string &model,
                  int64_t batch, bool jit) {
  Setup s(model, batch);
  auto pipeline = trainingPipeline();
  if (!s.graph || !pipeline ||
      runPasses(*s.graph, *pipeline, {}, llvm::nulls())) {
    state.SkipWithError("could not build the training graph");
    return;
  }
  std::unique_ptr<JIT> compiler;
  const CompiledGraph *compiled = nullptr;
  if (jit) {
    JITOptions opts;
    opts.vectorWidth = unsigned(state.range(0));
    opts.threads = unsigned(state.range(1));
    auto made = JIT::create(opts);
    auto c = made ? (*made)->compile(*s.graph)
                  : llvm::Expected<const CompiledGraph &>(made.takeError());
    if (!c) {
      state.SkipWithError(llvm::toString(c.takeError()).c_str());
      return;
    }
    compiler = std::move(*made);
    compiled = &*c;
    state.counters["compile_ms"] = compiled->times().total() * 1e3;
  }
  // The compiled step runs as a training session runs it: bound once to
  // buffers that persist, with its own workspace (CompiledGraph::run would
  // allocate and fault in a fresh workspace per call).
  std::unique_ptr<JITStep> step;
  if (compiled) {
    auto made = JITStep::create(*compiled);
    if (!made) {
      state.SkipWithError(llvm::toString(made.takeError()).c_str());
      return;
    }
    step = std::move(*made);
    for (size_t i = 0; i < step->leaves().size(); ++i)
      step->bind(i, s.leaves[step->leaves()[i].name].raw());
  }
  for (auto _ : state) {
    if (step) {
      if (auto e = step->run(0, 0)) {
        state.SkipWithError(llvm::toString(std::move(e)).c_str());
        return;
      }
      benchmark::DoNotOptimize(step->objective());
    } else {
      auto values = interpret(*s.graph, s.leaves);
      benchmark::DoNotOptimize(values->back().raw());
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

/// {vector width, threads}: 128 and 256 bits (512 too where the CPU has
/// AVX-512; LLVM reports it unsupported otherwise), 1 and 2 threads.
void jitArgs(benchmark::internal::Benchmark *b) {
  b->ArgNames({"vwidth", "threads"});
  for (int64_t threads : {1, 2})
    for (int64_t width : {128, 256, 512})
      b->Args({width, threads});
  b->Unit(benchmark::kMillisecond);
}

} // namespace

BENCHMARK_CAPTURE(trainingStep, mlp_interp, "mlp", 128, false)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(trainingStep, mlp_jit, "mlp", 128, true)->Apply(jitArgs);
BENCHMARK_CAPTURE(trainingStep, cnn_interp, "cnn", 64, false)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(trainingStep, cnn_jit, "cnn", 64, true)->Apply(jitArgs);

BENCHMARK_CAPTURE(forward, mlp_f32, "mlp", 128, DType::F32)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(forward, mlp_f64, "mlp", 128, DType::F64)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(forward, cnn_f32, "cnn", 64, DType::F32)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(forward, resnet_f32, "resnet", 64, DType::F32)
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
