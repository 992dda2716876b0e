//===- Verifier.h - Graph invariants -----------------------------*- C++
//-*-===//
//
// A graph is valid when nodes are in topological order, every op's shape
// rule accepts it and agrees with its recorded type, leaf names are unique,
// the objective is a float scalar and updates name state of the right type.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_VERIFIER_H
#define KILN_IR_VERIFIER_H

#include "ir/Graph.h"

namespace kiln {

/// All problems found, joined; the messages name the node (%N) and its loc.
/// `isBody`: g is a fused node's body, where `arg` leaves are legal.
llvm::Error verifyGraph(const Graph &g, bool isBody = false);

} // namespace kiln

#endif
