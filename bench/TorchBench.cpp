//===- TorchBench.cpp - The peer: the same work through LibTorch ----------===//
//
// Built when CMake finds LibTorch (KILN_BENCH_TORCH; bench/run.sh installs
// Debian's libtorch-dev). Kiln itself never links it.
//
// - `torchMm`: torch::mm on the shapes of BM_KilnGemm (GemmBench.cpp), and
//   `openblasSgemm`, OpenBLAS's cblas_sgemm called directly on the same
//   operands: the check that LibTorch's GEMM runs at its BLAS's speed.
// - `torchMlp`, `torchCnn`, `torchResnet`: the training steps of
//   models/mlp.kiln, cnn.kiln and resnet.kiln written with LibTorch's C++
//   modules and optimizers as a user would, from the same initial
//   parameters (Kiln's initialParams with seed 1, copied in), on the same
//   synthetic batches in the same order (Setup.h), with the hyperparameters
//   of the model's train block. A step is what Kiln's `session*` step times
//   as `total_ms`: the batch's gather, forward, backward and the optimizer's
//   update. `loss1` and `loss2` are the objective of the first two steps,
//   which match Kiln's when the two do the same work.
//
// Threads: each benchmark sets LibTorch's intra-op threads and OpenBLAS's
// own count (LibTorch does not pass its count on) to its `threads`
// argument; the label reports both and OpenBLAS's configuration.
//
//   build/bin/kiln-bench --benchmark_filter='torch|openblas'
//
//===----------------------------------------------------------------------===//
#include "Peak.h"
#include "Setup.h"
#include "runtime/Gradients.h"
#include "llvm/Support/FormatVariadic.h"
#include <benchmark/benchmark.h>
#include <chrono>
#include <dlfcn.h>
#include <torch/torch.h>

using namespace kiln;
using namespace kiln::bench;

namespace {

using Clock = std::chrono::steady_clock;

//===-- OpenBLAS, found at run time ---------------------------------------===//

/// OpenBLAS's entry points in this process (LibTorch loads the library), or
/// null where the BLAS is another one.
struct OpenBlas {
  void (*setThreads)(int) = nullptr;
  int (*getThreads)() = nullptr;
  char *(*config)() = nullptr;
  // cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb,
  // beta, C, ldc), with CBLAS's enum values as ints.
  void (*sgemm)(int, int, int, int, int, int, float, const float *, int,
                const float *, int, float, float *, int) = nullptr;

  static const OpenBlas &get() {
    static OpenBlas b = [] {
      OpenBlas b;
      b.setThreads = reinterpret_cast<void (*)(int)>(
          dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
      b.getThreads = reinterpret_cast<int (*)()>(
          dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
      b.config = reinterpret_cast<char *(*)()>(
          dlsym(RTLD_DEFAULT, "openblas_get_config"));
      b.sgemm = reinterpret_cast<decltype(b.sgemm)>(
          dlsym(RTLD_DEFAULT, "cblas_sgemm"));
      return b;
    }();
    return b;
  }
};

/// Sets LibTorch's and OpenBLAS's thread counts and returns the label that
/// reports them.
std::string useThreads(int threads) {
  torch::set_num_threads(threads);
  const OpenBlas &blas = OpenBlas::get();
  if (blas.setThreads)
    blas.setThreads(threads);
  return llvm::formatv("torch {0} threads, {1}", torch::get_num_threads(),
                       blas.getThreads
                           ? llvm::formatv("OpenBLAS {0} threads ({1})",
                                           blas.getThreads(),
                                           blas.config ? blas.config() : "")
                                 .str()
                           : std::string("BLAS not OpenBLAS"))
      .str();
}

//===-- GEMM -------------------------------------------------------------===//

/// A row-major M x K matrix, stored K x M and viewed transposed when
/// `transposed`, as torch::mm reads a `.t()` view in place.
torch::Tensor operand(int64_t rows, int64_t cols, bool transposed) {
  return transposed ? torch::rand({cols, rows}).t() : torch::rand({rows, cols});
}

void torchMm(benchmark::State &state) {
  int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  int threads = int(state.range(5));
  std::string label = useThreads(threads);
  torch::NoGradGuard noGrad;
  torch::Tensor a = operand(m, k, state.range(3) != 0);
  torch::Tensor b = operand(k, n, state.range(4) != 0);
  torch::Tensor c = torch::empty({m, n});
  for (auto _ : state) {
    torch::mm_out(c, a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  reportGemm(state, m, n, k, unsigned(threads));
  state.SetLabel(label);
}

void openblasSgemm(benchmark::State &state) {
  const OpenBlas &blas = OpenBlas::get();
  if (!blas.sgemm) {
    state.SkipWithError("cblas_sgemm is not in this process");
    return;
  }
  int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  bool ta = state.range(3) != 0, tb = state.range(4) != 0;
  int threads = int(state.range(5));
  std::string label = useThreads(threads);
  torch::NoGradGuard noGrad;
  torch::Tensor a = torch::rand({ta ? k : m, ta ? m : k});
  torch::Tensor b = torch::rand({tb ? n : k, tb ? k : n});
  torch::Tensor c = torch::empty({m, n});
  constexpr int RowMajor = 101, NoTrans = 111, Trans = 112;
  for (auto _ : state) {
    blas.sgemm(RowMajor, ta ? Trans : NoTrans, tb ? Trans : NoTrans, int(m),
               int(n), int(k), 1.0f, a.data_ptr<float>(), int(a.size(1)),
               b.data_ptr<float>(), int(b.size(1)), 0.0f, c.data_ptr<float>(),
               int(n));
    benchmark::DoNotOptimize(c.data_ptr());
  }
  reportGemm(state, m, n, k, unsigned(threads));
  state.SetLabel(label);
}

//===-- The models -------------------------------------------------------===//

struct Mlp : torch::nn::Module {
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  Mlp() {
    fc1 = register_module("fc1", torch::nn::Linear(784, 256));
    fc2 = register_module("fc2", torch::nn::Linear(256, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    return fc2(torch::relu(fc1(x.view({x.size(0), 784}))));
  }
};

struct Cnn : torch::nn::Module {
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  Cnn() {
    using torch::nn::Conv2dOptions;
    conv1 = register_module(
        "conv1", torch::nn::Conv2d(Conv2dOptions(1, 32, 3).padding(1)));
    conv2 = register_module(
        "conv2", torch::nn::Conv2d(Conv2dOptions(32, 64, 3).padding(1)));
    fc1 = register_module("fc1", torch::nn::Linear(3136, 128));
    fc2 = register_module("fc2", torch::nn::Linear(128, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = x.view({x.size(0), 1, 28, 28});
    x = torch::max_pool2d(torch::relu(conv1(x)), 2);
    x = torch::max_pool2d(torch::relu(conv2(x)), 2);
    return fc2(torch::relu(fc1(x.flatten(1))));
  }
};

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k)
                               .stride(stride)
                               .padding(k / 2)
                               .bias(false));
}

struct BasicBlock : torch::nn::Module {
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  explicit BasicBlock(int64_t c) {
    conv1 = register_module("conv1", conv(c, c, 3, 1));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(c));
    conv2 = register_module("conv2", conv(c, c, 3, 1));
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(c));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor h = torch::relu(bn1(conv1(x)));
    return torch::relu(bn2(conv2(h)) + x);
  }
};

struct DownBlock : torch::nn::Module {
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, proj{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, projBn{nullptr};
  DownBlock(int64_t in, int64_t out) {
    conv1 = register_module("conv1", conv(in, out, 3, 2));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(out));
    conv2 = register_module("conv2", conv(out, out, 3, 1));
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(out));
    proj = register_module("proj", conv(in, out, 1, 2));
    projBn = register_module("proj_bn", torch::nn::BatchNorm2d(out));
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor h = torch::relu(bn1(conv1(x)));
    return torch::relu(bn2(conv2(h)) + projBn(proj(x)));
  }
};

struct Resnet : torch::nn::Module {
  torch::nn::Conv2d stem{nullptr};
  torch::nn::BatchNorm2d stemBn{nullptr};
  std::shared_ptr<BasicBlock> block1, block3;
  std::shared_ptr<DownBlock> block2;
  torch::nn::Linear fc{nullptr};
  Resnet() {
    stem = register_module("stem", conv(1, 16, 3, 1));
    stemBn = register_module("stem_bn", torch::nn::BatchNorm2d(16));
    block1 = register_module("block1", std::make_shared<BasicBlock>(16));
    block2 = register_module("block2", std::make_shared<DownBlock>(16, 32));
    block3 = register_module("block3", std::make_shared<BasicBlock>(32));
    fc = register_module("fc", torch::nn::Linear(32, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = x.view({x.size(0), 1, 28, 28});
    x = block1->forward(torch::relu(stemBn(stem(x))));
    x = block3->forward(block2->forward(x));
    return fc(torch::avg_pool2d(x, 14).flatten(1));
  }
};

/// Copies Kiln's initial tensors into `module`'s parameters and buffers:
/// NAME.w and NAME.gamma are NAME.weight, NAME.b and NAME.beta NAME.bias (a
/// dense layer's weight transposed: Kiln's is [in, out], LibTorch's
/// [out, in]); running statistics keep their names. Every tensor on each
/// side must find its partner, with its shape, or this names the first that
/// does not. The optimizer's state is left out: LibTorch's optimizer makes
/// its own, zero as Kiln's starts.
llvm::Error loadKilnParams(torch::nn::Module &module, const TensorMap &kiln) {
  std::map<std::string, torch::Tensor> targets;
  for (auto &p : module.named_parameters())
    targets[p.key()] = p.value();
  for (auto &b : module.named_buffers())
    if (b.key().find("num_batches_tracked") == std::string::npos)
      targets[b.key()] = b.value();
  torch::NoGradGuard noGrad;
  size_t matched = 0;
  for (auto &[name, tensor] : kiln) {
    size_t dot = name.rfind('.');
    std::string base = name.substr(0, dot), field = name.substr(dot + 1);
    // The optimizer's state of parameter P is P.FIELD; both sides start it
    // at zero.
    if (kiln.count(base))
      continue;
    std::string torchName = name;
    if (field == "w" || field == "gamma")
      torchName = base + ".weight";
    else if (field == "b" || field == "beta")
      torchName = base + ".bias";
    auto it = targets.find(torchName);
    if (it == targets.end())
      return makeError("LibTorch's model has no " + torchName + " for Kiln's " +
                       name);
    std::vector<int64_t> shape(tensor.shape().begin(), tensor.shape().end());
    torch::Tensor t =
        torch::from_blob(const_cast<float *>(tensor.data<float>()), shape)
            .clone();
    if (t.dim() == 2 && it->second.dim() == 2)
      t = t.t();
    if (t.sizes() != it->second.sizes())
      return makeError("Kiln's " + name + " does not fit LibTorch's " +
                       torchName);
    it->second.copy_(t);
    ++matched;
  }
  if (matched != targets.size())
    return makeError("LibTorch's model has tensors that Kiln's has not");
  return llvm::Error::success();
}

/// The optimizer of the model's train block, as torch::optim builds it.
std::unique_ptr<torch::optim::Optimizer>
makeOptimizer(const OptimizerConfig &o, std::vector<torch::Tensor> params) {
  if (o.kind == "adam")
    return std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(o.arg("lr"))
                    .betas({o.arg("beta1"), o.arg("beta2")})
                    .eps(o.arg("eps"))
                    .weight_decay(o.arg("weight_decay")));
  if (o.kind == "sgd")
    return std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(o.arg("lr"))
                    .momentum(o.arg("momentum"))
                    .dampening(o.arg("dampening"))
                    .weight_decay(o.arg("weight_decay"))
                    .nesterov(o.arg("nesterov") != 0));
  return nullptr;
}

template <typename Model>
void torchStep(benchmark::State &state, const std::string &name) {
  int threads = int(state.range(0));
  std::string label = useThreads(threads);
  TrainSetup s(name, true);
  if (!s.error.empty()) {
    state.SkipWithError(s.error.c_str());
    return;
  }
  auto model = std::make_shared<Model>();
  model->train();
  if (auto e = loadKilnParams(*model, initialParams(*s.graph, 1))) {
    state.SkipWithError(llvm::toString(std::move(e)).c_str());
    return;
  }
  auto optimizer = makeOptimizer(s.config.optimizer, model->parameters());
  if (!optimizer) {
    state.SkipWithError(
        ("no LibTorch optimizer for " + s.config.optimizer.kind).c_str());
    return;
  }
  int64_t batch = s.config.batch;
  std::vector<Node *> inputs = s.graph->leaves(Op::Input);
  BenchData data(*numElements(inputs[0]->type.shape) / batch);
  const Tensor &im = data.data.images, &lb = data.data.labels;
  torch::Tensor images = torch::from_blob(const_cast<float *>(im.data<float>()),
                                          {im.shape()[0], im.shape()[1]});
  // The labels as the int64 class indices cross_entropy takes, once.
  torch::Tensor labels =
      torch::from_blob(const_cast<int32_t *>(lb.data<int32_t>()),
                       {lb.shape()[0]}, torch::kInt)
          .to(torch::kLong);
  std::vector<torch::Tensor> params = model->parameters();
  int64_t at = 0;
  auto step = [&] {
    llvm::ArrayRef<int64_t> rows = data.next(at, batch);
    torch::Tensor index = torch::from_blob(const_cast<int64_t *>(rows.data()),
                                           {batch}, torch::kLong);
    torch::Tensor x = images.index_select(0, index);
    torch::Tensor y = labels.index_select(0, index);
    // Gradients reset to none, not filled with zeros (LibTorch 1.13's
    // zero_grad() does that): backward then writes them instead of adding.
    for (torch::Tensor &p : params)
      p.mutable_grad() = torch::Tensor();
    torch::Tensor loss =
        torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    optimizer->step();
    return double(loss.item<float>());
  };
  StepRecord record;
  for (int w = 0; w < kWarmupSteps; ++w)
    record.losses.push_back(step());
  for (auto _ : state) {
    auto t0 = Clock::now();
    benchmark::DoNotOptimize(step());
    record.seconds.push_back(
        std::chrono::duration<double>(Clock::now() - t0).count());
  }
  reportStep(state, record, batch);
  state.SetLabel(label);
}

void torchMlp(benchmark::State &s) { torchStep<Mlp>(s, "mlp"); }
void torchCnn(benchmark::State &s) { torchStep<Cnn>(s, "cnn"); }
void torchResnet(benchmark::State &s) { torchStep<Resnet>(s, "resnet"); }

} // namespace

BENCHMARK(torchMm)->Apply([](auto *b) { gemmShapes(b, true); });
BENCHMARK(openblasSgemm)->Apply([](auto *b) { gemmShapes(b, true); });
BENCHMARK(torchMlp)->Apply(stepThreadCounts);
BENCHMARK(torchCnn)->Apply(stepThreadCounts);
BENCHMARK(torchResnet)->Apply(stepThreadCounts);
