//===- GemmKernel.cpp - The GEMM macro- and micro-kernel, per ISA ---------===//
//
// Compiled three times (see CMakeLists.txt) with KILN_GEMM_ISA set to
// sse2, avx2 or avx512 and the matching -m flags; Gemm.cpp picks one at run
// time. The structure is the classic Goto/BLIS one: a KC x NC panel of B is
// packed into contiguous NR-wide strips, and an MR x NR micro-kernel keeps
// its tile of C in vector registers across the K loop, broadcasting A's
// elements straight from the operand (transposed or not).
//
//===----------------------------------------------------------------------===//
#include "runtime/Gemm.h"
#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

#ifndef KILN_GEMM_ISA
#error "compile with -DKILN_GEMM_ISA=sse2|avx2|avx512"
#endif

namespace kiln {
namespace KILN_GEMM_ISA {

// The micro-tile is MR rows by NV vectors: MR * NV accumulators, NV vectors
// of B and one broadcast of A must fit the register file (16 or 32).
// 6 x 2 beats 4 x 3 on AVX2 (81 against 44 GFLOP/s on a Zen 3 core).
#if defined(__AVX512F__)
constexpr int W = 16, MR = 12, NV = 2;
#elif defined(__AVX2__)
constexpr int W = 8, MR = 6, NV = 2;
#else
constexpr int W = 4, MR = 6, NV = 2;
#endif
constexpr int NR = NV * W;
// Block sizes: a KC x NR strip of B sits in L1, MC x KC of A in L2.
constexpr int64_t KC = 256, MC = MR * 24, NC = 1024;

typedef float V __attribute__((vector_size(W * 4)));
typedef float VU __attribute__((vector_size(W * 4), aligned(4)));

/// x in every lane (V{} + x would keep a real addition of +0).
static inline V splat(float x) {
  V v;
  for (int i = 0; i < W; ++i)
    v[i] = x;
  return v;
}

/// Packs rows [k0, k0+kc) x columns [j0, j0+nc) of op(B) into NR-column
/// strips, k-major within a strip, zero-padding the last strip.
static void packB(const GemmOperand &B, int64_t k0, int64_t kc, int64_t j0,
                  int64_t nc, float *dst) {
  for (int64_t s = 0; s < nc; s += NR) {
    int64_t cols = std::min<int64_t>(NR, nc - s);
    for (int64_t k = 0; k < kc; ++k) {
      int64_t kk = k0 + k;
      if (!B.trans && cols == NR) {
        std::memcpy(dst, B.data + kk * B.ld + j0 + s, NR * sizeof(float));
      } else {
        for (int64_t c = 0; c < cols; ++c) {
          int64_t j = j0 + s + c;
          dst[c] = B.trans ? B.data[j * B.ld + kk] : B.data[kk * B.ld + j];
        }
        for (int64_t c = cols; c < NR; ++c)
          dst[c] = 0;
      }
      dst += NR;
    }
  }
}

/// C[0:R, 0:nr] (+)= a (R x kc, element (r, k) at a[r*rs + k*ks], read in
/// place) · b (a packed kc x NR strip). A is not packed: its rows stream
/// through L1 as fast as a packed copy would, and M = 128 (the MLP's batch)
/// is not a multiple of MR, so the last R < MR rows get a kernel of their own.
template <int R>
static void microKernel(int64_t kc, const float *a, int64_t rs, int64_t ks,
                        const float *b, float *c, int64_t ldc, int64_t nr,
                        bool overwrite) {
  V acc[R][NV] = {};
#pragma clang loop unroll_count(4)
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
#pragma clang loop unroll(full)
    for (int v = 0; v < NV; ++v)
      bv[v] = *reinterpret_cast<const V *>(b + v * W);
#pragma clang loop unroll(full)
    for (int r = 0; r < R; ++r) {
      V ar = splat(a[r * rs]);
#pragma clang loop unroll(full)
      for (int v = 0; v < NV; ++v)
        acc[r][v] += ar * bv[v];
    }
    a += ks;
    b += NR;
  }
  if (nr == NR) {
#pragma clang loop unroll(full)
    for (int r = 0; r < R; ++r) {
      VU *row = reinterpret_cast<VU *>(c + r * ldc);
#pragma clang loop unroll(full)
      for (int v = 0; v < NV; ++v)
        row[v] = overwrite ? acc[r][v] : row[v] + acc[r][v];
    }
    return;
  }
  alignas(64) float tile[R][NR];
  std::memcpy(tile, acc, sizeof(tile));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = 0; j < nr; ++j)
      c[r * ldc + j] = overwrite ? tile[r][j] : c[r * ldc + j] + tile[r][j];
}

using MicroKernel = void (*)(int64_t, const float *, int64_t, int64_t,
                             const float *, float *, int64_t, int64_t, bool);

/// microKernel<R> for R = 1..MR, indexed by R - 1.
template <int... Rs>
constexpr std::array<MicroKernel, sizeof...(Rs)>
kernelTable(std::integer_sequence<int, Rs...>) {
  return {&microKernel<Rs + 1>...};
}
static constexpr auto kKernels =
    kernelTable(std::make_integer_sequence<int, MR>());

/// A 64-byte-aligned scratch buffer per thread.
static float *scratch(std::unique_ptr<float, decltype(&std::free)> &buf,
                      size_t floats) {
  if (!buf)
    buf.reset(static_cast<float *>(std::aligned_alloc(64, floats * 4)));
  return buf.get();
}

/// C[i0:i1, j0:j1] (+)= op(A)[i0:i1, :] · op(B)[:, j0:j1].
void gemmBlock(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t K,
               const GemmOperand &A, const GemmOperand &B, float *C,
               int64_t ldc, bool accumulate) {
  thread_local std::unique_ptr<float, decltype(&std::free)> bBuf(nullptr,
                                                                 &std::free);
  float *bp = scratch(bBuf, KC * NC); // K blocks never exceed KC
  if (K == 0) {
    for (int64_t i = i0; i < i1 && !accumulate; ++i)
      std::fill(C + i * ldc + j0, C + i * ldc + j1, 0.0f);
    return;
  }
  // Equal K blocks (784 = 3 x 262, not 3 x 256 + 16): a short last block
  // would pay the C tile's loads and stores for few FMAs.
  int64_t kBlock = (K + (K + KC - 1) / KC - 1) / ((K + KC - 1) / KC);
  for (int64_t jc = j0; jc < j1; jc += NC) {
    int64_t nc = std::min(NC, j1 - jc);
    for (int64_t pc = 0; pc < K; pc += kBlock) {
      int64_t kc = std::min(kBlock, K - pc);
      bool overwrite = pc == 0 && !accumulate;
      packB(B, pc, kc, jc, nc, bp);
      int64_t rs = A.trans ? 1 : A.ld, ks = A.trans ? A.ld : 1;
      for (int64_t ic = i0; ic < i1; ic += MC) {
        int64_t mc = std::min(MC, i1 - ic);
        for (int64_t jr = 0; jr < nc; jr += NR)
          for (int64_t ir = 0; ir < mc; ir += MR) {
            int64_t mr = std::min<int64_t>(MR, mc - ir);
            kKernels[mr - 1](kc, A.data + (ic + ir) * rs + pc * ks, rs, ks,
                             bp + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc,
                             std::min<int64_t>(NR, nc - jr), overwrite);
          }
      }
    }
  }
}

/// Twelve independent FMA chains, enough to cover the FMA latency on both
/// ports of current x86 cores.
double fmaPeakLoop(int64_t iters) {
  constexpr int Chains = 12;
  V acc[Chains];
  for (int i = 0; i < Chains; ++i)
    acc[i] = splat(float(i) * 1e-3f);
  V x = splat(0.999999f), y = splat(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma clang loop unroll(full)
    for (int i = 0; i < Chains; ++i)
      acc[i] = acc[i] * x + y;
    asm volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]));
  }
  V sum = V{};
  for (int i = 0; i < Chains; ++i)
    sum += acc[i];
  volatile float sink = sum[0];
  (void)sink;
  return double(iters) * Chains * W * 2;
}

extern const int kVectorWidth = W, kMR = MR, kNR = NR;

} // namespace KILN_GEMM_ISA
} // namespace kiln
