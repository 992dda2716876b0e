//===- Gemm.cpp - The GEMM macro-kernel: blocking, packing, threads -------===//
//
// The classic Goto/BLIS structure: a KC x NC panel of op(B) is packed into
// contiguous NR-wide strips, an MC x KC block of A into row panels, and an
// MR x NR micro-kernel keeps its tile of C in vector registers across the K
// loop, broadcasting a column of A's panel at each k. A stored transposed
// already has those columns contiguous, so it is read in place. B not
// transposed is packed by the first micro-kernel of each strip, as it does
// its own FMAs: the packing's loads overlap with arithmetic instead of
// taking a pass of their own.
//
//===----------------------------------------------------------------------===//
#include "runtime/Gemm.h"
#include "runtime/ThreadPool.h"
#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <memory>

using namespace kiln;

namespace {

// A KC x NR strip of B sits in L1 and MC rows of A in L2.
constexpr int64_t KC = kGemmKC, NC = 1024, MCTiles = 24;

typedef float V4 __attribute__((vector_size(16)));
typedef float V4U __attribute__((vector_size(16), aligned(4)));
typedef float V2U __attribute__((vector_size(8), aligned(4)));

/// dst[j*ldd + i] = src[i*lds + j] for i < rows, j < cols: 4 x 4 and 2 x 4
/// blocks through vector shuffles, the edges one element at a time. Packing
/// took a tenth of the MLP's GEMM time when done element by element.
void transposeInto(const float *src, int64_t lds, int64_t rows, int64_t cols,
                   float *dst, int64_t ldd) {
  int64_t r4 = rows & ~int64_t(3), c4 = cols & ~int64_t(3);
  for (int64_t i = 0; i < r4; i += 4) {
    const float *s = src + i * lds;
    for (int64_t j = 0; j < c4; j += 4) {
      V4 x0 = *(const V4U *)(s + j), x1 = *(const V4U *)(s + lds + j);
      V4 x2 = *(const V4U *)(s + 2 * lds + j);
      V4 x3 = *(const V4U *)(s + 3 * lds + j);
      V4 t0 = __builtin_shufflevector(x0, x1, 0, 4, 1, 5);
      V4 t1 = __builtin_shufflevector(x0, x1, 2, 6, 3, 7);
      V4 t2 = __builtin_shufflevector(x2, x3, 0, 4, 1, 5);
      V4 t3 = __builtin_shufflevector(x2, x3, 2, 6, 3, 7);
      float *d = dst + j * ldd + i;
      *(V4U *)d = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
      *(V4U *)(d + ldd) = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
      *(V4U *)(d + 2 * ldd) = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
      *(V4U *)(d + 3 * ldd) = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
    }
    for (int64_t j = c4; j < cols; ++j)
      for (int64_t ii = i; ii < i + 4; ++ii)
        dst[j * ldd + ii] = src[ii * lds + j];
  }
  int64_t r2 = rows & ~int64_t(1); // a 6-row tile is 4 + 2 rows
  if (r4 < r2) {
    const float *s = src + r4 * lds;
    for (int64_t j = 0; j < c4; j += 4) {
      V4 x0 = *(const V4U *)(s + j), x1 = *(const V4U *)(s + lds + j);
      V4 t0 = __builtin_shufflevector(x0, x1, 0, 4, 1, 5);
      V4 t1 = __builtin_shufflevector(x0, x1, 2, 6, 3, 7);
      float *d = dst + j * ldd + r4;
      *(V2U *)d = __builtin_shufflevector(t0, t0, 0, 1);
      *(V2U *)(d + ldd) = __builtin_shufflevector(t0, t0, 2, 3);
      *(V2U *)(d + 2 * ldd) = __builtin_shufflevector(t1, t1, 0, 1);
      *(V2U *)(d + 3 * ldd) = __builtin_shufflevector(t1, t1, 2, 3);
    }
    for (int64_t j = c4; j < cols; ++j)
      for (int64_t ii = r4; ii < r2; ++ii)
        dst[j * ldd + ii] = src[ii * lds + j];
  }
  for (int64_t i = r2; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      dst[j * ldd + i] = src[i * lds + j];
}

/// Packs rows [k0, k0+kc) x columns [j0, j0+nc) of op(B) into NR-column
/// strips, k-major within a strip, zero-padding the last strip.
void packB(const GemmOperand &B, int64_t NR, int64_t k0, int64_t kc, int64_t j0,
           int64_t nc, float *dst) {
  if (!B.trans) {
    // Row by row of B, so its reads are one sequential stream.
    for (int64_t k = 0; k < kc; ++k) {
      const float *src = B.data + (k0 + k) * B.ld + j0;
      float *row = dst + k * NR;
      for (int64_t s = 0; s < nc; s += NR, row += kc * NR, src += NR) {
        int64_t cols = std::min(NR, nc - s);
        for (int64_t c = 0; c < cols; ++c)
          row[c] = src[c];
        std::fill(row + cols, row + NR, 0.0f);
      }
    }
    return;
  }
  for (int64_t s = 0; s < nc; s += NR, dst += kc * NR) {
    int64_t cols = std::min(NR, nc - s);
    transposeInto(B.data + (j0 + s) * B.ld + k0, B.ld, cols, kc, dst, NR);
    if (cols < NR)
      for (int64_t k = 0; k < kc; ++k)
        std::fill(dst + k * NR + cols, dst + (k + 1) * NR, 0.0f);
  }
}

/// The rows of the next micro-tile when `left` rows remain. A remainder of
/// fewer than MR rows shares the last whole tile's rows evenly (128 rows at
/// MR = 6 end 4 + 4, not 6 + 2): a 2-row tile has too few independent FMA
/// chains to hide their latency.
int64_t tileRows(int64_t left, int64_t MR) {
  return left > MR && left < 2 * MR ? (left + 1) / 2 : std::min(MR, left);
}

/// Packs rows [i0, i0+mc) x columns [k0, k0+kc) of A (not transposed) into
/// one panel per micro-tile, column-major within a panel (element (r, k) of
/// a tile of R rows at k*R + r), the panels back to back.
void packA(const GemmOperand &A, int64_t MR, int64_t i0, int64_t mc, int64_t k0,
           int64_t kc, float *dst) {
  for (int64_t ir = 0; ir < mc;) {
    int64_t rows = tileRows(mc - ir, MR);
    transposeInto(A.data + (i0 + ir) * A.ld + k0, A.ld, rows, kc, dst, rows);
    dst += rows * kc;
    ir += rows;
  }
}

using Buffer = std::unique_ptr<float, decltype(&std::free)>;

Buffer alloc(int64_t floats) {
  return Buffer(static_cast<float *>(std::aligned_alloc(64, floats * 4)),
                &std::free);
}

enum class Use { A, Tile, Panel };

/// A buffer of the calling thread's with room for `floats` floats, kept for
/// its later calls (one per `Use`, so that two buffers in use at once are
/// distinct).
float *threadBuffer(Use use, int64_t floats) {
  thread_local Buffer bufs[3] = {
      {nullptr, &std::free}, {nullptr, &std::free}, {nullptr, &std::free}};
  thread_local int64_t sizes[3] = {0, 0, 0};
  int u = int(use);
  if (sizes[u] < floats) {
    bufs[u] = alloc(floats);
    sizes[u] = floats;
  }
  return bufs[u].get();
}

/// C[i0:i1, j0:j1] (+)= op(A)[i0:i1, :] · op(B)[:, j0:j1].
/// Then runs the epilogue on each MC x NR block of C after its last K
/// block, while the block is in L1 or L2. A null C (with an epilogue) is
/// kept in the thread's buffers: with one K block, each MC x NR block in a
/// tile that stays in cache; with several, the rows' panel of each NC
/// columns, which the K blocks accumulate into.
void gemmBlock(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t K,
               const GemmOperand &A, const GemmOperand &B, float *C,
               int64_t ldc, bool accumulate, const GemmKernels &kern,
               const GemmEpilogue *epi) {
  assert((C || (epi && !accumulate)) && "a null C is for an epilogue only");
  if (K == 0) {
    // The block of C is zeros (or, accumulating, unchanged).
    float *block = C ? C + i0 * ldc + j0 : nullptr;
    int64_t ld = ldc;
    if (!C) {
      ld = j1 - j0;
      block = threadBuffer(Use::Panel, (i1 - i0) * ld);
    }
    for (int64_t i = 0; i < i1 - i0 && !accumulate; ++i)
      std::fill(block + i * ld, block + i * ld + (j1 - j0), 0.0f);
    if (epi)
      epi->fn(epi->ctx, i0, i1, j0, j1, block, ld);
    return;
  }
  const int64_t MR = kern.mr, NR = kern.nr, MC = MR * MCTiles;
  // kc <= KC, and NC is a multiple of NR, so the padded panel fits KC x NC.
  thread_local Buffer bBuf = alloc(KC * NC);
  float *bp = bBuf.get(), *ap = threadBuffer(Use::A, MC * KC);
  // Equal K blocks (784 = 3 x 262, not 3 x 256 + 16): a short last block
  // would pay the C tile's loads and stores for few FMAs.
  int64_t blocks = (K + KC - 1) / KC, kBlock = (K + blocks - 1) / blocks;
  // Where block (ic + ir, jc + jr) of C is: in C, in the tile, or in the
  // panel of rows [i0, i1) and columns [jc, jc + NC).
  // A panel row is as wide as the widest column block, in whole strips, and
  // not a multiple of 4 KiB, whose rows would alias in the L1.
  const bool tile = !C && blocks == 1, panel = !C && blocks > 1;
  int64_t panelLd = std::min(NC, (j1 - j0 + NR - 1) / NR * NR);
  if (panelLd % 1024 == 0)
    panelLd += 16;
  float *tileBuf = tile ? threadBuffer(Use::Tile, MC * NR) : nullptr;
  float *panelBuf =
      panel ? threadBuffer(Use::Panel, (i1 - i0) * panelLd) : nullptr;
  auto cBlock = [&](int64_t ic, int64_t ir, int64_t jc, int64_t jr,
                    int64_t &ld) {
    if (tile) {
      ld = NR;
      return tileBuf + ir * NR;
    }
    if (panel) {
      ld = panelLd;
      return panelBuf + (ic + ir - i0) * panelLd + jr;
    }
    ld = ldc;
    return C + (ic + ir) * ldc + jc + jr;
  };
  // B not transposed is packed by the first row tile's kernel as it reads
  // it, when that tile is a whole one. When one block of A covers all the
  // rows, no strip is needed again after its column of tiles, so every
  // strip is packed into the same buffer, which then stays in L1.
  const bool fusePackB = !B.trans && tileRows(std::min(MC, i1 - i0), MR) == MR;
  const bool oneStrip = fusePackB && i1 - i0 <= MC;
  for (int64_t jc = j0; jc < j1; jc += NC) {
    int64_t nc = std::min(NC, j1 - jc);
    for (int64_t pc = 0; pc < K; pc += kBlock) {
      int64_t kc = std::min(kBlock, K - pc);
      bool overwrite = pc == 0 && !accumulate;
      if (!fusePackB)
        packB(B, NR, pc, kc, jc, nc, bp);
      for (int64_t ic = i0; ic < i1; ic += MC) {
        int64_t mc = std::min(MC, i1 - ic);
        if (!A.trans)
          packA(A, MR, ic, mc, pc, kc, ap);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const float *aPanel = ap;
          float *strip = oneStrip ? bp : bp + jr * kc;
          int64_t nr = std::min(NR, nc - jr);
          for (int64_t ir = 0; ir < mc;) {
            int64_t rows = tileRows(mc - ir, MR), lda = rows;
            const float *a = aPanel;
            if (A.trans) {
              a = A.data + pc * A.ld + ic + ir;
              lda = A.ld;
            }
            int64_t ld;
            float *c = cBlock(ic, ir, jc, jr, ld);
            if (fusePackB && ic == i0 && ir == 0)
              kern.packing()(kc, a, lda, B.data + pc * B.ld + jc + jr, B.ld,
                             strip, c, ld, nr, overwrite);
            else
              kern.plain(rows)(kc, a, lda, strip, 0, nullptr, c, ld, nr,
                               overwrite);
            aPanel += rows * kc;
            ir += rows;
          }
          if (epi && pc + kc == K) {
            int64_t ld;
            const float *c = cBlock(ic, 0, jc, jr, ld);
            epi->fn(epi->ctx, ic, ic + mc, jc + jr, jc + jr + nr, c, ld);
          }
        }
      }
    }
  }
}

} // namespace

void kiln::gemm(int64_t M, int64_t N, int64_t K, GemmOperand A, GemmOperand B,
                float *C, int64_t ldc, bool accumulate,
                const GemmKernels &kernels, ThreadPool *pool,
                const GemmEpilogue *epi) {
  assert(kernels.nr <= kGemmMaxNR && NC % kernels.nr == 0);
  if (M <= 0 || N <= 0)
    return;
  // Below ~2 MFLOP a second thread costs more than it saves.
  bool parallel = pool && pool->size() > 1 && double(M) * N * K >= 1e6;
  if (!parallel) {
    gemmBlock(0, M, 0, N, K, A, B, C, ldc, accumulate, kernels, epi);
    return;
  }
  // Split C into whole micro-tiles, by columns unless its rows make the
  // largest chunk (what the caller waits for) more than an eighth smaller:
  // a weight's columns then stay on one core from step to step
  // (docs/codegen.md, "The GEMM").
  int64_t colTiles = (N + kernels.nr - 1) / kernels.nr,
          rowTiles = (M + kernels.mr - 1) / kernels.mr;
  // The largest of parallelFor's chunks of `tiles` tiles, in elements of C.
  auto largest = [&](int64_t tiles, int64_t tile, int64_t length,
                     int64_t across) {
    unsigned chunks = pool->chunkCount(tiles, 1);
    int64_t most = 0;
    for (unsigned i = 0; i < chunks; ++i) {
      auto [t0, t1] = ThreadPool::chunkBounds(tiles, chunks, i);
      most = std::max(most, std::min(length, t1 * tile) - t0 * tile);
    }
    return most * across;
  };
  if (8 * largest(colTiles, kernels.nr, N, M) <=
      9 * largest(rowTiles, kernels.mr, M, N)) {
    int64_t nr = kernels.nr;
    pool->parallelFor(colTiles, 1, [&](int64_t t0, int64_t t1) {
      gemmBlock(0, M, t0 * nr, std::min(N, t1 * nr), K, A, B, C, ldc,
                accumulate, kernels, epi);
    });
  } else {
    int64_t mr = kernels.mr;
    pool->parallelFor(rowTiles, 1, [&](int64_t t0, int64_t t1) {
      gemmBlock(t0 * mr, std::min(M, t1 * mr), 0, N, K, A, B, C, ldc,
                accumulate, kernels, epi);
    });
  }
}
