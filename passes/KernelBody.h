//===- KernelBody.h - Building the bodies of fused kernels -----*- C++ -*-===//
//
// What the fusion passes share: which nodes are elementwise work, whether a
// kernel reads an operand only at the element it computes, and a builder
// that makes a body of args and cloned ops.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_KERNELBODY_H
#define KILN_PASSES_KERNELBODY_H

#include "ir/Graph.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SetVector.h"

namespace kiln {

/// Where each node of a graph is and who reads it, for a pass that moves
/// nodes (rebuilt after each change).
struct GraphUses {
  explicit GraphUses(const Graph &g);
  /// Each node's position in g.nodes.
  llvm::DenseMap<const Node *, size_t> index;
  /// Each node's readers, each once, in graph order.
  llvm::DenseMap<const Node *, llvm::SmallVector<Node *, 2>> users;
  /// How many of g's roots each node is.
  llvm::DenseMap<const Node *, int> rootUses;
};

/// True for an f32 elementwise kernel, or one f32 elementwise op
/// (stop_gradient aside).
bool isElementwiseWork(const Node &n);

/// True if c (elementwise work or a fused kernel) reads its operand k only
/// at the element it computes: every value computed from it is a scalar
/// op's, and it is not itself one of c's results.
bool readsAtElement(const Node &c, size_t k);

/// A kernel body under construction: an arg for each outside value, made
/// on first use, and clones of ops.
class BodyBuilder {
public:
  explicit BodyBuilder(llvm::StringRef name);

  /// The arg that reads outside value `outer`.
  Node *arg(Node *outer);
  /// Clones elementwise work w (its op, or its body's ops) on `operands`;
  /// returns what it computes (its results).
  llvm::Expected<llvm::SmallVector<Node *, 4>>
  inlineWork(const Node &w, llvm::ArrayRef<Node *> operands);
  /// Appends an op to the body.
  llvm::Expected<Node *> add(Op op, llvm::ArrayRef<Node *> operands,
                             llvm::ArrayRef<Attr> attrs, Location loc);

  /// Ends the body with these results and makes the fused node of `kind` at
  /// the end of g; returns it, removed from g's list, for the caller to
  /// place (an error if the body breaks the kind's rules).
  llvm::Expected<std::unique_ptr<Node>> finish(Graph &g, llvm::StringRef kind,
                                               llvm::ArrayRef<Node *> results,
                                               Location loc);

private:
  std::unique_ptr<Graph> body;
  llvm::SetVector<Node *> operands;
  llvm::DenseMap<Node *, Node *> argFor;
};

} // namespace kiln

#endif
