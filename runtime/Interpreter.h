//===- Interpreter.h - The reference interpreter -----------------*- C++
//-*-===//
//
// Evaluates a graph node by node with each op's reference rule (Eigen), in
// float32 or float64. It is the oracle the JIT and the gradient checks are
// measured against, so it favours clarity over speed.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_INTERPRETER_H
#define KILN_RUNTIME_INTERPRETER_H

#include "ir/Graph.h"
#include "ir/Tensor.h"
#include "llvm/ADT/StringMap.h"

namespace kiln {

struct InterpOptions {
  /// F32 or F64: the dtype every float value is computed in.
  DType precision = DType::F32;
  uint64_t seed = 0; ///< Dropout's run seed and step.
  uint64_t step = 0;
  /// If not empty, only these nodes and what they depend on are evaluated;
  /// the other values are left empty.
  llvm::ArrayRef<const Node *> only;
};

/// Evaluates every node of `g`, given values for its inputs, params and state
/// by name. Returns one tensor per node, in `g.nodes` order. Missing or
/// mis-shaped values and out-of-range ids are errors.
llvm::Expected<std::vector<Tensor>>
interpret(const Graph &g, const llvm::StringMap<Tensor> &leaves,
          const InterpOptions &opts = {});

} // namespace kiln

#endif
