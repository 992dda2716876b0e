//===- GemmBench.cpp - Kiln's GEMM against the CPU's peak and Eigen -------===//
//
// Reports, for the runtime GEMM with the micro-kernels the JIT generates for
// this CPU (the code every compiled matmul runs), GFLOP/s and the fraction of
// this core's measured fp32 FMA peak (BM_FmaPeak measures it with
// independent FMA chains on this CPU's widest vectors). The MLP's shapes run
// side by side with Eigen's GEMM on the same operands, single-threaded, with
// transposed operands read in place by both; BM_GemmVsEigen alternates the
// two call by call and reports Eigen's median time over Kiln's. This file is
// compiled with -march=native so Eigen and the peak loop get this CPU's
// vector units too.
//
//   build/bin/kiln-bench --benchmark_filter='Gemm|Peak'
//
//===----------------------------------------------------------------------===//
#include "Peak.h"
#include "Setup.h"
#include "codegen/JIT.h"
#include "runtime/Gemm.h"
#include "runtime/ThreadPool.h"
#include "llvm/Support/FormatVariadic.h"
#include <Eigen/Core>
#include <algorithm>
#include <benchmark/benchmark.h>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

using namespace kiln;

namespace {

#if defined(__AVX512F__)
constexpr int W = 16;
const char *kIsa = "avx512";
#elif defined(__AVX2__)
constexpr int W = 8;
const char *kIsa = "avx2";
#else
constexpr int W = 4;
const char *kIsa = "sse";
#endif
typedef float V __attribute__((vector_size(W * 4)));

/// Runs `iters` iterations of twelve independent vector FMA chains, enough
/// to cover the FMA latency on both ports of current x86 cores, and returns
/// the floating-point operations done.
double fmaPeakLoop(int64_t iters) {
  constexpr int Chains = 12;
  V acc[Chains];
  for (int i = 0; i < Chains; ++i)
    acc[i] = V{} + float(i) * 1e-3f;
  V x = V{} + 0.999999f, y = V{} + 1e-7f;
  for (int64_t it = 0; it < iters; ++it) {
#pragma clang loop unroll(full)
    for (int i = 0; i < Chains; ++i)
      acc[i] = acc[i] * x + y;
    asm volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]));
  }
  V sum = V{};
  for (int i = 0; i < Chains; ++i)
    sum += acc[i];
  benchmark::DoNotOptimize(sum);
  return double(iters) * Chains * W * 2;
}

} // namespace

double kiln::bench::measuredPeak(unsigned threads) {
  static std::map<unsigned, double> peaks;
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  auto [it, fresh] = peaks.try_emplace(threads, 0);
  if (!fresh)
    return it->second;
  // Every thread runs the loop at once; the rate is all their work over
  // the wall time, best of five.
  fmaPeakLoop(1 << 20); // warm up the clock
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<std::thread> pool;
    std::vector<double> flops(threads);
    auto t0 = std::chrono::steady_clock::now();
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back(
          [&flops, t] { flops[t] = fmaPeakLoop(int64_t(1) << 24); });
    for (std::thread &t : pool)
      t.join();
    std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    double total = 0;
    for (double f : flops)
      total += f;
    it->second = std::max(it->second, total / dt.count() * 1e-9);
  }
  return it->second;
}

namespace {

using bench::gemmShapes;
using bench::measuredPeak;

std::vector<float> randomMatrix(int64_t elems, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(elems);
  for (float &x : v)
    x = u(rng);
  return v;
}

/// Shapes: M, N, K and whether A and B are stored transposed.
struct Shape3 {
  int64_t m, n, k;
  bool ta, tb;
};

Shape3 shapeArg(const benchmark::State &s) {
  return {s.range(0), s.range(1), s.range(2), s.range(3) != 0, s.range(4) != 0};
}

void BM_FmaPeak(benchmark::State &state) {
  double flops = 0;
  for (auto _ : state)
    flops += fmaPeakLoop(1 << 20);
  state.counters["GFLOPS"] = benchmark::Counter(
      flops, benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.SetLabel(kIsa);
  unsigned cores = ThreadPool::hardwareThreads();
  state.counters["cores"] = cores;
  state.counters["one_core_GFLOPS"] = measuredPeak(1);
  state.counters["all_cores_GFLOPS"] = measuredPeak(cores);
}

/// The JIT's micro-kernels for this CPU, compiled once.
const GemmKernels &jitKernels() {
  static std::unique_ptr<JIT> jit = llvm::cantFail(JIT::create());
  static GemmKernels kernels = llvm::cantFail(jit->gemmKernels());
  return kernels;
}
BENCHMARK(BM_FmaPeak);

void BM_KilnGemm(benchmark::State &state) {
  Shape3 s = shapeArg(state);
  unsigned threads = unsigned(state.range(5));
  auto a = randomMatrix(s.m * s.k, 1), b = randomMatrix(s.k * s.n, 2);
  std::vector<float> c(s.m * s.n);
  GemmOperand A{a.data(), s.ta ? s.m : s.k, s.ta};
  GemmOperand B{b.data(), s.tb ? s.k : s.n, s.tb};
  ThreadPool pool(threads);
  const GemmKernels &kernels = jitKernels();
  for (auto _ : state) {
    gemm(s.m, s.n, s.k, A, B, c.data(), s.n, false, kernels, &pool);
    benchmark::DoNotOptimize(c.data());
  }
  bench::reportGemm(state, s.m, s.n, s.k, threads);
  state.SetLabel(llvm::formatv("{0}x{1} tile", kernels.mr, kernels.nr).str());
}

/// One MR-row micro-kernel call on a packed A panel and B strip that stay
/// in L1: the arithmetic's ceiling, with no packing or cache misses.
void BM_GemmMicroKernel(benchmark::State &state) {
  const GemmKernels &kernels = jitKernels();
  int64_t kc = state.range(0), mr = kernels.mr, nr = kernels.nr;
  auto a = randomMatrix(mr * kc, 1);
  float *b = static_cast<float *>(std::aligned_alloc(64, kc * nr * 4));
  auto bv = randomMatrix(kc * nr, 2);
  std::copy(bv.begin(), bv.end(), b);
  std::vector<float> c(mr * nr);
  GemmMicroKernel kernel = kernels.plain(mr);
  for (auto _ : state) {
    kernel(kc, a.data(), mr, b, 0, nullptr, c.data(), nr, nr, 0);
    benchmark::DoNotOptimize(c.data());
  }
  std::free(b);
  double flops = 2.0 * mr * nr * kc;
  state.counters["GFLOPS"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
  state.counters["peak_pct"] =
      benchmark::Counter(flops * 1e-9 / measuredPeak() * 100,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(llvm::formatv("{0}x{1} tile", mr, nr).str());
}
BENCHMARK(BM_GemmMicroKernel)->ArgName("kc")->Arg(64)->Arg(256);

using RowMajor =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

using ConstMap = Eigen::Map<const RowMajor>;

/// Eigen's views of the operands as `s` stores them.
ConstMap eigenA(const Shape3 &s, const std::vector<float> &a) {
  return ConstMap(a.data(), s.ta ? s.k : s.m, s.ta ? s.m : s.k);
}
ConstMap eigenB(const Shape3 &s, const std::vector<float> &b) {
  return ConstMap(b.data(), s.tb ? s.n : s.k, s.tb ? s.k : s.n);
}

/// c = op(A) op(B) with Eigen, the transposed operand read in place.
void eigenGemm(const Shape3 &s, const ConstMap &A, const ConstMap &B,
               RowMajor &c) {
  if (s.ta)
    c.noalias() = A.transpose() * B;
  else if (s.tb)
    c.noalias() = A * B.transpose();
  else
    c.noalias() = A * B;
  benchmark::DoNotOptimize(c.data());
}

void BM_EigenGemm(benchmark::State &state) {
  Shape3 s = shapeArg(state);
  auto a = randomMatrix(s.m * s.k, 1), b = randomMatrix(s.k * s.n, 2);
  RowMajor c(s.m, s.n);
  ConstMap A = eigenA(s, a), B = eigenB(s, b);
  for (auto _ : state)
    eigenGemm(s, A, B, c);
  bench::reportGemm(state, s.m, s.n, s.k, 1);
}

/// Kiln and Eigen on the same operands, one call of each in turn (which goes
/// first alternates), each call timed: `speedup` is Eigen's median call time
/// over Kiln's. Alternating call by call cancels the slow drifts of a shared
/// machine that separate benchmarks see as differences between them.
void BM_GemmVsEigen(benchmark::State &state) {
  Shape3 s = shapeArg(state);
  auto a = randomMatrix(s.m * s.k, 1), b = randomMatrix(s.k * s.n, 2);
  std::vector<float> c(s.m * s.n);
  GemmOperand A{a.data(), s.ta ? s.m : s.k, s.ta};
  GemmOperand B{b.data(), s.tb ? s.k : s.n, s.tb};
  const GemmKernels &kernels = jitKernels();
  RowMajor ce(s.m, s.n);
  ConstMap EA = eigenA(s, a), EB = eigenB(s, b);
  std::vector<double> kiln, eigen;
  using Clock = std::chrono::steady_clock;
  auto timed = [](auto &&call) {
    auto t0 = Clock::now();
    call();
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  auto runKiln = [&] {
    gemm(s.m, s.n, s.k, A, B, c.data(), s.n, false, kernels, nullptr);
    benchmark::DoNotOptimize(c.data());
  };
  auto runEigen = [&] { eigenGemm(s, EA, EB, ce); };
  // Which of two back-to-back calls goes first moves its time by about 1%
  // on this machine, so the order alternates.
  bool kilnFirst = true;
  for (auto _ : state) {
    if (kilnFirst) {
      kiln.push_back(timed(runKiln));
      eigen.push_back(timed(runEigen));
    } else {
      eigen.push_back(timed(runEigen));
      kiln.push_back(timed(runKiln));
    }
    kilnFirst = !kilnFirst;
  }
  auto median = [](std::vector<double> &v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  double tk = median(kiln), te = median(eigen), flops = 2.0 * s.m * s.n * s.k;
  state.counters["kiln_GFLOPS"] = flops / tk * 1e-9;
  state.counters["eigen_GFLOPS"] = flops / te * 1e-9;
  state.counters["speedup"] = te / tk;
}

BENCHMARK(BM_KilnGemm)->Apply([](auto *b) { gemmShapes(b, true); });
BENCHMARK(BM_EigenGemm)->Apply([](auto *b) { gemmShapes(b, false); });
BENCHMARK(BM_GemmVsEigen)->Apply([](auto *b) { gemmShapes(b, false); });

} // namespace
