//===- Gradients.cpp - Evaluating and checking gradients ------------------===//
//
// The finite-difference check perturbs one element at a time by
// h = 1e-6 * max(1, |x|) in float64 and evaluates the training graph's
// objective on both sides. Only where that is not clearly right does it
// look for kinks, with the selectors (step, equal): evaluating those costs
// more than the objective (max pooling's compare whole im2col matrices).
// Elements are sampled deterministically so a run is reproducible. The
// relative error's denominator has a floor of 1e-4: below it, float64
// differencing noise (~1e-10) would swamp a true gradient of 0.
//
//===----------------------------------------------------------------------===//
#include "runtime/Gradients.h"
#include "runtime/Init.h"
#include "runtime/Interpreter.h"
#include "llvm/ADT/DenseSet.h"
#include <cmath>
#include <cstring>
#include <optional>
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
    if (auto i = t.firstOutOfRange(n.type.dtype))
      return makeError(llvm::Twine(file) + " tensor '" + name + "' holds " +
                       t.valueStr(*i) + " at index " + llvm::Twine(*i) +
                       ", which " + dtypeName(n.type.dtype) + " cannot hold");
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
  // Copies: one node may be several roots (two gradients CSE made one).
  out["loss"] = (*values)[indexOf(training, training.objective)];
  for (const NamedGradient &gr : training.gradients)
    out[gr.name] = (*values)[indexOf(training, gr.value)];
  return out;
}

namespace {
/// Evaluates a training graph's objective in float64 at perturbed leaves,
/// and on request its selectors (step, equal), which depend on forward
/// values only and say which piece of every piecewise op is in use.
class Prober {
public:
  Prober(const Graph &training, const llvm::StringMap<Tensor> &leaves)
      : g(training), objective(indexOf(training, training.objective)) {
    for (auto &kv : leaves)
      work[kv.getKey()] = kv.getValue().cast(
          isFloat(kv.getValue().dtype()) ? DType::F64 : kv.getValue().dtype());
    withSelectors.push_back(training.objective);
    for (size_t i = 0; i < training.nodes.size(); ++i)
      if (training.nodes[i]->info().flags & Selector) {
        withSelectors.push_back(training.nodes[i].get());
        selectorIndex.push_back(i);
      }
  }

  /// The leaf a gradient belongs to, in float64, to perturb in place.
  Tensor &leaf(llvm::StringRef name) { return work[name]; }

  struct Point {
    double loss = 0;
    std::vector<Tensor> selectors; ///< empty unless asked for
    bool samePieces(const Point &o) const {
      for (size_t i = 0; i < selectors.size(); ++i)
        if (std::memcmp(selectors[i].raw(), o.selectors[i].raw(),
                        selectors[i].nbytes()))
          return false;
      return true;
    }
  };

  llvm::Expected<Point> at(bool selectors) {
    InterpOptions opts{DType::F64};
    const Node *loss = g.objective;
    opts.only = selectors ? llvm::ArrayRef<const Node *>(withSelectors)
                          : llvm::ArrayRef<const Node *>(loss);
    auto v = interpret(g, work, opts);
    if (!v)
      return v.takeError();
    Point p{(*v)[objective].at(0)};
    if (selectors)
      for (size_t i : selectorIndex)
        p.selectors.push_back(std::move((*v)[i]));
    return p;
  }

  /// The point with element `i` of `x` moved by `dx`.
  llvm::Expected<Point> moved(Tensor &x, int64_t i, double dx, bool selectors) {
    double *p = x.data<double>() + i, saved = *p;
    *p = saved + dx;
    auto r = at(selectors);
    *p = saved;
    return r;
  }

private:
  const Graph &g;
  size_t objective;
  llvm::StringMap<Tensor> work;
  std::vector<const Node *> withSelectors;
  std::vector<size_t> selectorIndex;
};

double relativeError(double an, double fd) {
  return std::abs(an - fd) / std::max({std::abs(an), std::abs(fd), 1e-4});
}
} // namespace

llvm::Expected<std::vector<GradCheck>>
kiln::checkGradients(const Graph &training, const TensorMap &gradients,
                     const llvm::StringMap<Tensor> &leaves,
                     const GradCheckOptions &opts) {
  if (!training.objective)
    return makeError("the graph has no objective");
  Prober probe(training, leaves);
  std::optional<Prober::Point> center; // with selectors, when first needed
  std::vector<GradCheck> out;
  std::mt19937_64 rng(1);
  for (const NamedGradient &gr : training.gradients) {
    auto given = gradients.find(gr.name);
    if (given == gradients.end())
      return makeError("no gradient for '" + gr.name + "' to check");
    const Tensor &a = given->second;
    Tensor &x = probe.leaf(gr.name);
    if (a.shape() != x.shape())
      return makeError("the gradient of '" + gr.name + "' has shape " +
                       shapeStr(a.shape()) + ", not " + shapeStr(x.shape()));
    GradCheck c{gr.name};
    std::vector<int64_t> picks;
    if (x.numel() <= opts.samples) {
      for (int64_t i = 0; i < x.numel(); ++i)
        picks.push_back(i);
    } else {
      // Distinct elements: a draw already taken is drawn again.
      llvm::DenseSet<int64_t> taken;
      while (int64_t(picks.size()) < opts.samples) {
        int64_t i = int64_t(rng() % uint64_t(x.numel()));
        if (taken.insert(i).second)
          picks.push_back(i);
      }
    }
    for (int64_t i : picks) {
      double an = a.at(i);
      double h = 1e-6 * std::max(1.0, std::abs(x.data<double>()[i]));
      // 1. Central differences: the objective alone, twice.
      auto up = probe.moved(x, i, h, false),
           down = probe.moved(x, i, -h, false);
      if (!up)
        return up.takeError();
      if (!down)
        return down.takeError();
      double err = relativeError(an, (up->loss - down->loss) / (2 * h));
      if (err > opts.tolerance / 10) {
        // 2. Not clearly right: is there a kink near x? A side of x whose
        // points x + dir s, 2 dir s, 3 dir s lie on one piece gives a
        // second-order estimate of that piece's derivative at x.
        if (!center) {
          auto p = probe.at(true);
          if (!p)
            return p.takeError();
          center = std::move(*p);
        }
        // With kinks on both sides within s of x, x's own piece shows only
        // at a shorter step, so both steps are tried.
        llvm::SmallVector<double, 4> sides;
        bool smooth = true, own = false;
        for (double s : {h, h / 8}) {
          for (double dir : {1.0, -1.0}) {
            llvm::SmallVector<Prober::Point, 3> p;
            for (int k = 1; k <= 3; ++k) {
              auto q = probe.moved(x, i, k * dir * s, true);
              if (!q)
                return q.takeError();
              p.push_back(std::move(*q));
            }
            bool onePiece = p[0].samePieces(p[1]) && p[1].samePieces(p[2]);
            bool mine = onePiece && p[0].samePieces(*center);
            smooth &= mine;
            own |= mine;
            if (onePiece)
              sides.push_back(dir *
                              (-5 * p[0].loss + 8 * p[1].loss - 3 * p[2].loss) /
                              (2 * s));
          }
          if (smooth) // no kink within 3h: the central difference stands
            break;
        }
        // Unless some side shows x's own piece, nothing can be compared.
        bool resolved = smooth || own;
        if (!smooth && own) {
          // Compare with the nearest piece: x's own, or one across a kink
          // this near (float32 rounding may put x on either side of it).
          err = INFINITY;
          for (double fd : sides)
            err = std::min(err, relativeError(an, fd));
          ++c.oneSided;
        }
        if (!resolved && err > opts.tolerance) {
          ++c.kinks; // x's piece is too narrow to difference on
          continue;
        }
      }
      // A NaN (a NaN gradient, or a difference of NaN losses) is the worst
      // error there is, and stays so: std::max would drop it.
      if (!std::isnan(c.worst) && !(err <= c.worst))
        c.worst = err;
      ++c.checked;
    }
    out.push_back(c);
  }
  return out;
}
