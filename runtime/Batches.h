//===- Batches.h - Shuffled batches, mixup and cutmix -----------*- C++ -*-===//
//
// What the training loop does to the data between steps: order the examples
// (a seeded shuffle per epoch), copy a batch into the step's input buffers,
// and mix it (mixup, cutmix). Every random choice comes from a counter-based
// generator keyed by (seed, purpose, counter), so the same seed gives the
// same batches on every machine and resuming needs no generator state
// beyond the counters a checkpoint already holds (epoch and step).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_BATCHES_H
#define KILN_RUNTIME_BATCHES_H

#include "runtime/Data.h"
#include "llvm/ADT/ArrayRef.h"
#include <cstdint>
#include <vector>

namespace kiln {

/// What a generator's numbers are for: one stream per purpose.
enum class RngStream : uint64_t { Shuffle = 1, Split = 2, Mix = 3 };

/// A small counter-based generator: splitmix64 over (seed, stream,
/// counter). Its sequence is fixed by this file, not by a standard library.
class Rng {
public:
  Rng(uint64_t seed, RngStream stream, uint64_t counter);
  uint64_t next();
  /// Uniform in [0, 1) with 53 random bits.
  double uniform();
  /// Uniform in [0, n), without modulo bias.
  uint64_t below(uint64_t n);
  /// Standard normal (Box-Muller).
  double normal();
  /// Gamma(shape, 1), Marsaglia and Tsang's method.
  double gamma(double shape);
  /// Beta(a, a), as mixup draws lambda.
  double beta(double a);

private:
  uint64_t state;
};

/// 0 .. n-1, shuffled by Fisher-Yates with Rng(seed, stream, counter).
std::vector<int64_t> shuffled(int64_t n, uint64_t seed, RngStream stream,
                              uint64_t counter);

/// Copies examples `rows` of `data` into x (f32, exampleSize() each) and
/// their labels into y.
void gatherBatch(const Dataset &data, llvm::ArrayRef<int64_t> rows, float *x,
                 int32_t *y);

/// How a batch was mixed: each row's partner label and lambda.
struct Mix {
  std::vector<int32_t> partnerLabels;
  double lambda = 1;
};

/// Mixup (Zhang et al.): x = lambda x + (1 - lambda) x[perm] with lambda ~
/// Beta(alpha, alpha) and perm a shuffle of the batch.
Mix mixupBatch(float *x, const int32_t *y, int64_t n, int64_t exampleSize,
               double alpha, Rng &rng);

/// CutMix (Yun et al.): a box of x[perm] pasted into each image, its area
/// 1 - lambda of the image for lambda ~ Beta(alpha, alpha), clipped at the
/// borders, and lambda recomputed from the clipped box. Examples are
/// [channels, height, width] (exampleSize = c * h * w).
Mix cutmixBatch(float *x, const int32_t *y, int64_t n, int64_t channels,
                int64_t height, int64_t width, double alpha, Rng &rng);

} // namespace kiln

#endif
