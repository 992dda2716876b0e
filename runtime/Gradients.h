//===- Gradients.h - Evaluating and checking gradients -----------*- C++
//-*-===//
//
// What `kiln grad` runs: bind parameters and inputs from files to a graph's
// leaves (checking names, shapes and dtypes), evaluate the loss and the
// gradients, and compare a backend's gradients with float64 central
// differences.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_GRADIENTS_H
#define KILN_RUNTIME_GRADIENTS_H

#include "ir/Graph.h"
#include "runtime/Safetensors.h"
#include "llvm/ADT/StringMap.h"

namespace kiln {

/// Values for every input, param and state of g. Params and inputs must be
/// in the files with the leaf's shape (errors name the tensor, its expected
/// and actual shape); state missing from `params` starts at its initialiser.
llvm::Expected<llvm::StringMap<Tensor>>
bindLeaves(const Graph &g, const TensorMap &params, const TensorMap &inputs);

/// The initial values of g's params and state, from their initialisers.
TensorMap initialParams(const Graph &g, uint64_t seed);

/// Evaluates a training graph: `loss` plus one tensor per gradient, under
/// the parameter's (or input's) name, in `precision`.
llvm::Expected<TensorMap>
evaluateGradients(const Graph &training, const llvm::StringMap<Tensor> &leaves,
                  DType precision = DType::F32);

/// The largest relative error of float32 gradients (what both backends
/// compute) against float64 finite differences that passes: above the worst
/// seen on the models in models/ (7.4e-4, docs/autodiff.md), and far below
/// what a wrong rule or kernel gives.
inline constexpr double kFloat32GradTolerance = 1e-3;

struct GradCheckOptions {
  /// Distinct elements compared per tensor (all of them if it is smaller),
  /// the same ones on every run.
  int64_t samples = 24;
  /// The largest relative error that passes:
  /// |g - fd| / max(|g|, |fd|, 1e-4).
  double tolerance = kFloat32GradTolerance;
};

struct GradCheck {
  std::string name;
  int64_t checked = 0; ///< elements compared
  /// Of those, elements next to a kink of the objective (a relu, abs or
  /// max input within 3h of its corner), compared with a one-sided
  /// difference.
  int64_t oneSided = 0;
  /// Elements left out: with kinks within 3h on both sides.
  int64_t kinks = 0;
  double worst = 0; ///< worst relative error over the compared elements
  /// Within the tolerance, and at least one element compared.
  bool passed(const GradCheckOptions &opts) const {
    return checked > 0 && worst <= opts.tolerance;
  }
};

/// Compares `gradients` (what a backend computed for the training graph,
/// under the parameters' and inputs' names) with float64 finite
/// differences of the training graph's objective, on a deterministic
/// sample of each tensor's elements, in the training graph's order.
///
/// Central differences are wrong where the objective has a kink inside
/// [x - h, x + h]. Gradient rules pick the piece of a piecewise op with
/// selector ops (step, equal), so a kink is exactly a selector that changes.
/// An element whose central difference is not within a tenth of the
/// tolerance is looked at closer: each side of x whose points x + s, 2s, 3s
/// lie on one piece gives a second-order one-sided estimate of that piece's
/// derivative at x, for s = h and h / 8. If some side lies on x's own piece
/// and there is a kink, the gradient is compared with the nearest of the
/// estimates (the gradient at a kink is one side's derivative, relu'(0) = 0
/// the left one; and float32 rounding may put x on either side of a kink
/// that near). If none does, and the central difference is over the
/// tolerance, the element is left out and counted in `kinks`.
llvm::Expected<std::vector<GradCheck>>
checkGradients(const Graph &training, const TensorMap &gradients,
               const llvm::StringMap<Tensor> &leaves,
               const GradCheckOptions &opts = {});

} // namespace kiln

#endif
