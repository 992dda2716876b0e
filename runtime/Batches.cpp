//===- Batches.cpp - Shuffled batches, mixup and cutmix -------------------===//
//
// The generator is splitmix64 (Steele, Lea and Flood): a Weyl sequence
// through a 64-bit finaliser, seeded by hashing the seed, stream and
// counter together.
//
//===----------------------------------------------------------------------===//
#include "runtime/Batches.h"
#include <cmath>
#include <cstring>

using namespace kiln;

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed, RngStream stream, uint64_t counter)
    : state(mix64(mix64(mix64(seed) ^ uint64_t(stream)) ^ counter)) {}

uint64_t Rng::next() {
  state += 0x9e3779b97f4a7c15ULL;
  return mix64(state);
}

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

uint64_t Rng::below(uint64_t n) {
  // Rejection from the top of the range removes the modulo bias.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do
    r = next();
  while (r >= limit);
  return r % n;
}

double Rng::normal() {
  double u1 = 1.0 - uniform(); // (0, 1]
  double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

double Rng::gamma(double shape) {
  if (shape < 1) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a).
    double u = 1.0 - uniform();
    return gamma(shape + 1) * std::pow(u, 1.0 / shape);
  }
  double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x = normal(), v = 1 + c * x;
    if (v <= 0)
      continue;
    v = v * v * v;
    double u = 1.0 - uniform();
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v))
      return d * v;
  }
}

double Rng::beta(double a) {
  double x = gamma(a), y = gamma(a);
  return x + y > 0 ? x / (x + y) : 0.5;
}

std::vector<int64_t> kiln::shuffled(int64_t n, uint64_t seed, RngStream stream,
                                    uint64_t counter) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i)
    order[i] = i;
  Rng rng(seed, stream, counter);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(order[i], order[rng.below(uint64_t(i) + 1)]);
  return order;
}

void kiln::gatherBatch(const Dataset &data, llvm::ArrayRef<int64_t> rows,
                       float *x, int32_t *y) {
  int64_t size = data.exampleSize();
  const float *images = data.images.data<float>();
  const int32_t *labels = data.labels.data<int32_t>();
  // Rows are scattered over a dataset far larger than the caches: ask for
  // the next rows' first lines while copying this one.
  constexpr size_t kAhead = 4;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (r + kAhead < rows.size()) {
      const char *next =
          reinterpret_cast<const char *>(images + rows[r + kAhead] * size);
      for (int64_t b = 0; b < std::min<int64_t>(size * 4, 1024); b += 64)
        __builtin_prefetch(next + b);
    }
    std::memcpy(x + r * size, images + rows[r] * size, size * sizeof(float));
    y[r] = labels[rows[r]];
  }
}

Mix kiln::mixupBatch(float *x, const int32_t *y, int64_t n, int64_t exampleSize,
                     double alpha, Rng &rng) {
  Mix mix;
  mix.lambda = rng.beta(alpha);
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i)
    perm[i] = i;
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(perm[i], perm[rng.below(uint64_t(i) + 1)]);
  std::vector<float> original(x, x + n * exampleSize);
  float lam = float(mix.lambda), rest = float(1 - mix.lambda);
  for (int64_t i = 0; i < n; ++i) {
    const float *a = &original[i * exampleSize];
    const float *b = &original[perm[i] * exampleSize];
    for (int64_t k = 0; k < exampleSize; ++k)
      x[i * exampleSize + k] = lam * a[k] + rest * b[k];
    mix.partnerLabels.push_back(y[perm[i]]);
  }
  return mix;
}

Mix kiln::cutmixBatch(float *x, const int32_t *y, int64_t n, int64_t channels,
                      int64_t height, int64_t width, double alpha, Rng &rng) {
  Mix mix;
  double lambda = rng.beta(alpha);
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i)
    perm[i] = i;
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(perm[i], perm[rng.below(uint64_t(i) + 1)]);
  // The box: sides sqrt(1 - lambda) of the image's, centred uniformly,
  // clipped to the image.
  double cut = std::sqrt(1 - lambda);
  int64_t cw = int64_t(double(width) * cut), ch = int64_t(double(height) * cut);
  int64_t cx = int64_t(rng.below(uint64_t(width)));
  int64_t cy = int64_t(rng.below(uint64_t(height)));
  int64_t x1 = std::clamp<int64_t>(cx - cw / 2, 0, width);
  int64_t x2 = std::clamp<int64_t>(cx + cw / 2, 0, width);
  int64_t y1 = std::clamp<int64_t>(cy - ch / 2, 0, height);
  int64_t y2 = std::clamp<int64_t>(cy + ch / 2, 0, height);
  int64_t size = channels * height * width;
  std::vector<float> original(x, x + n * size);
  for (int64_t i = 0; i < n; ++i) {
    const float *b = &original[perm[i] * size];
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t r = y1; r < y2; ++r)
        for (int64_t q = x1; q < x2; ++q) {
          int64_t at = (c * height + r) * width + q;
          x[i * size + at] = b[at];
        }
    mix.partnerLabels.push_back(y[perm[i]]);
  }
  mix.lambda = 1 - double((x2 - x1) * (y2 - y1)) / double(width * height);
  return mix;
}
