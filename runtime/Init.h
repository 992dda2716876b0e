//===- Init.h - Parameter initialisers ---------------------------*- C++
//-*-===//
//
// The initialisers a `param` may name (zeros, he_normal, ...), their
// arguments and defaults, and how they fill a tensor. Defaults and fan rules
// follow torch.nn.init; the fan of a 2-D weight [in, out] (Kiln computes
// `x @ w`) is in = shape[0], out = shape[1].
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_INIT_H
#define KILN_RUNTIME_INIT_H

#include "ir/Graph.h"
#include "runtime/Tensor.h"
#include <random>

namespace kiln {

struct InitArg {
  llvm::StringRef name;
  double defaultValue;
};

struct InitInfo {
  llvm::StringRef name;
  llvm::SmallVector<InitArg, 2> args;
};

/// The initialiser called `name`, or null.
const InitInfo *findInit(llvm::StringRef name);
/// Every initialiser's name, for suggestions.
std::vector<llvm::StringRef> initNames();

/// Checks a param or state node's `init` attribute and its arguments.
llvm::Error validateInit(const Node &leaf);

/// Fills `out` (f32 or f64, the leaf's shape) as the leaf's init says.
void runInit(const Node &leaf, Tensor &out, std::mt19937_64 &rng);

/// (fan_in, fan_out) of a weight shape.
std::pair<int64_t, int64_t> fans(llvm::ArrayRef<int64_t> shape);

} // namespace kiln

#endif
