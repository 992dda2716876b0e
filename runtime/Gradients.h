//===- Gradients.h - Evaluating and checking gradients -----------*- C++
//-*-===//
//
// What `kiln grad` runs: bind parameters and inputs from files to a graph's
// leaves (checking names, shapes and dtypes), evaluate the loss and the
// gradients, and compare gradients with float64 central differences.
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

/// Evaluates a training graph: `loss` plus one f32 tensor per gradient,
/// under the parameter's (or input's) name.
llvm::Expected<TensorMap>
evaluateGradients(const Graph &training, const llvm::StringMap<Tensor> &leaves,
                  DType precision = DType::F32);

struct GradCheck {
  std::string name;
  int64_t checked = 0; ///< elements compared
  double worst = 0;    ///< worst relative error
};

/// Compares the training graph's gradients (in float64) with central
/// differences of the forward graph's objective (in float64), on up to
/// `samples` elements of each tensor (all of them if it is smaller).
/// Relative error: |a - fd| / max(|a|, |fd|, 1e-4).
llvm::Expected<std::vector<GradCheck>>
checkGradients(const Graph &forward, const Graph &training,
               const llvm::StringMap<Tensor> &leaves, int64_t samples = 24);

} // namespace kiln

#endif
