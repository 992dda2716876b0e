//===- Init.cpp - Filling parameters from their initialisers --------------===//
//
// Sampling for each initialiser of ir/Initializers.cpp. Gains follow
// torch.nn.init: He (Kaiming) uses sqrt(2), Xavier uses the `gain` argument
// (default 1).
//
//===----------------------------------------------------------------------===//
#include "runtime/Init.h"
#include <cmath>

using namespace kiln;

std::pair<int64_t, int64_t> kiln::fans(llvm::ArrayRef<int64_t> shape) {
  if (shape.empty())
    return {1, 1};
  if (shape.size() == 1)
    return {shape[0], shape[0]};
  if (shape.size() == 2)
    return {shape[0], shape[1]};
  int64_t field = 1;
  for (int64_t d : shape.drop_front(2))
    field *= d;
  return {shape[1] * field, shape[0] * field};
}

template <typename T>
static void fillWith(const Node &leaf, Tensor &out, std::mt19937_64 &rng) {
  T *p = out.data<T>();
  int64_t n = out.numel();
  std::string init = leaf.stringAttr("init");
  auto [fanIn, fanOut] = fans(out.shape());
  auto normal = [&](double mean, double std) {
    std::normal_distribution<double> d(mean, std);
    for (int64_t i = 0; i < n; ++i)
      p[i] = T(d(rng));
  };
  auto uniform = [&](double lo, double hi) {
    std::uniform_real_distribution<double> d(lo, hi);
    for (int64_t i = 0; i < n; ++i)
      p[i] = T(d(rng));
  };
  if (init == "zeros" || init == "ones") {
    std::fill(p, p + n, T(init == "ones" ? 1 : 0));
  } else if (init == "normal") {
    normal(leaf.floatAttr("mean"), leaf.floatAttr("std"));
  } else if (init == "uniform") {
    uniform(leaf.floatAttr("low"), leaf.floatAttr("high"));
  } else if (init == "xavier_uniform") {
    double a = leaf.floatAttr("gain") * std::sqrt(6.0 / double(fanIn + fanOut));
    uniform(-a, a);
  } else if (init == "xavier_normal") {
    normal(0, leaf.floatAttr("gain") * std::sqrt(2.0 / double(fanIn + fanOut)));
  } else if (init == "he_normal") {
    normal(0, std::sqrt(2.0 / double(fanIn)));
  } else if (init == "he_uniform") {
    double a = std::sqrt(6.0 / double(fanIn));
    uniform(-a, a);
  }
}

void kiln::runInit(const Node &leaf, Tensor &out, std::mt19937_64 &rng) {
  if (out.dtype() == DType::F64)
    fillWith<double>(leaf, out, rng);
  else
    fillWith<float>(leaf, out, rng);
}
