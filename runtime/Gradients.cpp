//===- Gradients.cpp - Evaluating and checking gradients ------------------===//
//
// The finite-difference check perturbs one element at a time by
// h = 1e-6 * max(1, |x|) in float64 and evaluates the forward graph twice.
// Elements are sampled deterministically so a run is reproducible. The
// relative error's denominator has a floor of 1e-4: below it, float64
// differencing noise (~1e-10) would swamp a true gradient of 0.
//
//===----------------------------------------------------------------------===//
#include "runtime/Gradients.h"
#include "runtime/Init.h"
#include "runtime/Interpreter.h"
#include <cmath>
#include <random>

using namespace kiln;

llvm::Expected<llvm::StringMap<Tensor>>
kiln::bindLeaves(const Graph &g, const TensorMap &params,
                 const TensorMap &inputs) {
  llvm::StringMap<Tensor> out;
  std::mt19937_64 rng(0);
  for (auto &np : g.nodes) {
    const Node &n = *np;
    if (n.op != Op::Input && n.op != Op::Param && n.op != Op::State)
      continue;
    std::string name = n.stringAttr("name");
    const TensorMap &from = n.op == Op::Input ? inputs : params;
    const char *file = n.op == Op::Input ? "--inputs" : "--params";
    auto it = from.find(name);
    if (it == from.end()) {
      if (n.op == Op::State) {
        Tensor t(DType::F32, n.type.shape);
        runInit(n, t, rng);
        out[name] = std::move(t);
        continue;
      }
      return makeError(llvm::Twine(file) + " has no tensor '" + name +
                       "' (expected " + n.type.str() + ")");
    }
    const Tensor &t = it->second;
    if (t.shape() != llvm::ArrayRef<int64_t>(n.type.shape))
      return makeError(llvm::Twine(file) + " tensor '" + name +
                       "' must have shape " + shapeStr(n.type.shape) +
                       ", but has " + shapeStr(t.shape()));
    if (isFloat(n.type.dtype) != isFloat(t.dtype()))
      return makeError(llvm::Twine(file) + " tensor '" + name + "' must be " +
                       (isFloat(n.type.dtype) ? "F32 or F64" : "I32 or I64") +
                       ", but is " + dtypeName(t.dtype()));
    out[name] = t;
  }
  return out;
}

TensorMap kiln::initialParams(const Graph &g, uint64_t seed) {
  TensorMap out;
  std::mt19937_64 rng(seed);
  for (auto &np : g.nodes)
    if (np->op == Op::Param || np->op == Op::State) {
      Tensor t(DType::F32, np->type.shape);
      runInit(*np, t, rng);
      out[np->stringAttr("name")] = std::move(t);
    }
  return out;
}

static size_t indexOf(const Graph &g, const Node *n) {
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].get() == n)
      return i;
  return g.nodes.size();
}

llvm::Expected<TensorMap>
kiln::evaluateGradients(const Graph &training,
                        const llvm::StringMap<Tensor> &leaves,
                        DType precision) {
  if (!training.objective)
    return makeError("the graph has no objective");
  auto values = interpret(training, leaves, {precision});
  if (!values)
    return values.takeError();
  TensorMap out;
  out["loss"] =
      (*values)[indexOf(training, training.objective)].cast(DType::F32);
  for (const NamedGradient &gr : training.gradients)
    out[gr.name] = (*values)[indexOf(training, gr.value)].cast(DType::F32);
  return out;
}

llvm::Expected<std::vector<GradCheck>>
kiln::checkGradients(const Graph &forward, const Graph &training,
                     const llvm::StringMap<Tensor> &leaves, int64_t samples) {
  // The analytic gradients, in float64.
  auto values = interpret(training, leaves, {DType::F64});
  if (!values)
    return values.takeError();
  size_t objective = indexOf(forward, forward.objective);
  llvm::StringMap<Tensor> work;
  for (auto &kv : leaves)
    work[kv.getKey()] = kv.getValue().cast(
        isFloat(kv.getValue().dtype()) ? DType::F64 : kv.getValue().dtype());
  auto loss = [&]() -> llvm::Expected<double> {
    auto v = interpret(forward, work, {DType::F64});
    if (!v)
      return v.takeError();
    return (*v)[objective].at(0);
  };
  std::vector<GradCheck> out;
  std::mt19937_64 rng(1);
  for (const NamedGradient &gr : training.gradients) {
    const Tensor &a = (*values)[indexOf(training, gr.value)];
    Tensor &x = work[gr.name];
    GradCheck c{gr.name};
    std::vector<int64_t> picks;
    if (x.numel() <= samples) {
      for (int64_t i = 0; i < x.numel(); ++i)
        picks.push_back(i);
    } else {
      for (int64_t k = 0; k < samples; ++k)
        picks.push_back(int64_t(rng() % uint64_t(x.numel())));
    }
    for (int64_t i : picks) {
      double *p = x.data<double>() + i, saved = *p;
      double h = 1e-6 * std::max(1.0, std::abs(saved));
      *p = saved + h;
      auto up = loss();
      *p = saved - h;
      auto down = loss();
      *p = saved;
      if (!up)
        return up.takeError();
      if (!down)
        return down.takeError();
      double fd = (*up - *down) / (2 * h), an = a.at(i);
      double err =
          std::abs(an - fd) / std::max({std::abs(an), std::abs(fd), 1e-4});
      c.worst = std::max(c.worst, err);
      ++c.checked;
    }
    out.push_back(c);
  }
  return out;
}
