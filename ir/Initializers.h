//===- Initializers.h - The table of parameter initialisers -----*- C++ -*-===//
//
// The initialisers a `param` may name (zeros, he_normal, ...), their
// arguments and defaults (torch.nn.init's). The frontend reads the table to
// lower `init=` and the verifier to check a leaf's `init` attribute; the
// runtime fills tensors from it (runtime/Init.h).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_INITIALIZERS_H
#define KILN_IR_INITIALIZERS_H

#include "ir/Graph.h"
#include <vector>

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

} // namespace kiln

#endif
