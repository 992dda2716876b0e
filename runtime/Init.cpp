//===- Init.cpp - Parameter initialisers ----------------------------------===//
//
// One table of initialisers with their arguments; validation and filling read
// it. Gains follow torch.nn.init: He (Kaiming) uses sqrt(2), Xavier uses the
// `gain` argument (default 1).
//
//===----------------------------------------------------------------------===//
#include "runtime/Init.h"
#include <cmath>

using namespace kiln;

static const InitInfo kInits[] = {
    {"zeros", {}},
    {"ones", {}},
    {"normal", {{"mean", 0.0}, {"std", 0.01}}},
    {"uniform", {{"low", 0.0}, {"high", 1.0}}},
    {"xavier_uniform", {{"gain", 1.0}}},
    {"xavier_normal", {{"gain", 1.0}}},
    {"he_normal", {}},
    {"he_uniform", {}},
};

const InitInfo *kiln::findInit(llvm::StringRef name) {
  for (const InitInfo &i : kInits)
    if (i.name == name)
      return &i;
  return nullptr;
}

std::vector<llvm::StringRef> kiln::initNames() {
  std::vector<llvm::StringRef> v;
  for (const InitInfo &i : kInits)
    v.push_back(i.name);
  return v;
}

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

llvm::Error kiln::validateInit(const Node &leaf) {
  auto name = leaf.getString("init");
  if (!name)
    return name.takeError();
  const InitInfo *info = findInit(*name);
  if (!info)
    return makeError("unknown initialiser '" + *name + "'");
  for (const InitArg &a : info->args) {
    auto v = leaf.getFloat(a.name);
    if (!v)
      return v.takeError();
    if (!std::isfinite(*v))
      return makeError("initialiser argument '" + a.name + "' is not finite");
  }
  if (*name == "uniform" && leaf.floatAttr("low") > leaf.floatAttr("high"))
    return makeError("uniform(low, high) needs low <= high");
  if (*name == "normal" && leaf.floatAttr("std") < 0)
    return makeError("normal(std) needs std >= 0");
  return llvm::Error::success();
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
