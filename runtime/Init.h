//===- Init.h - Filling parameters from their initialisers ------*- C++ -*-===//
//
// How a param or state leaf's initialiser (ir/Initializers.h has the table)
// fills a tensor. Fan rules follow torch.nn.init; the fan of a 2-D weight
// [in, out] (Kiln computes `x @ w`) is in = shape[0], out = shape[1].
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_INIT_H
#define KILN_RUNTIME_INIT_H

#include "ir/Graph.h"
#include "ir/Tensor.h"
#include <random>

namespace kiln {

/// Fills `out` (f32 or f64, the leaf's shape) as the leaf's init says.
void runInit(const Node &leaf, Tensor &out, std::mt19937_64 &rng);

/// (fan_in, fan_out) of a weight shape.
std::pair<int64_t, int64_t> fans(llvm::ArrayRef<int64_t> shape);

} // namespace kiln

#endif
