//===- Lower.h - From the syntax tree to graph IR ----------------*- C++
//-*-===//
//
// Lowering elaborates one model: it binds dimension names, runs layer calls
// (naming their parameters), unrolls loops and emits graph nodes with the
// source location of each expression. Errors are reported through
// Diagnostics and lowering carries on, so one run shows independent errors.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_FRONTEND_LOWER_H
#define KILN_FRONTEND_LOWER_H

#include "frontend/AST.h"
#include "ir/Graph.h"
#include "support/Diagnostics.h"
#include "llvm/ADT/StringMap.h"

namespace kiln {

/// Unroll limits: one loop, and the whole graph.
constexpr int64_t kMaxLoopTrips = 100000;
constexpr size_t kMaxNodes = 1 << 22;
/// Loop iterations in all, over every loop of a model, nested or not.
constexpr int64_t kMaxUnrolled = 1000000;
/// How deep expressions and layer calls may nest together, and the stack
/// elaboration runs on.
constexpr unsigned kMaxEvalDepth = 4000;
constexpr unsigned kElaborationStack = 64u << 20;
/// How deep layer calls may nest (the model counts as the first).
constexpr size_t kMaxCallDepth = 256;

struct LowerOptions {
  /// Dimension bindings (-D N=4, or a train block's batch).
  llvm::StringMap<int64_t> dims;
  /// Lower dropout and batch_norm for training (else for evaluation).
  bool trainMode = true;
  /// The limits on ops and on loop iterations in all (the fuzz target sets
  /// lower ones, so that its inputs stay fast under the sanitizers).
  size_t maxNodes = kMaxNodes;
  int64_t maxUnrolled = kMaxUnrolled;
};

/// Module-level checks: duplicate or shadowing definitions.
void checkModule(const Module &m, Diagnostics &diags);

/// Lowers `model`; null after reporting errors.
std::unique_ptr<Graph> lowerModel(const Module &m, const FuncDecl &model,
                                  const LowerOptions &opts, Diagnostics &diags);

/// Names of the built-in functions, for suggestions and shadowing checks.
std::vector<llvm::StringRef> builtinNames();

} // namespace kiln

#endif
