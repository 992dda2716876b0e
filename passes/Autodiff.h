//===- Autodiff.h - Reverse-mode differentiation of a graph ------*- C++
//-*-===//
//
// Builds the training graph: the objective's gradient with respect to every
// parameter (and requested inputs), as ordinary ops appended to the graph.
// Because gradient rules use only ordinary ops, the result can itself be
// differentiated (Hessian-vector products).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_AUTODIFF_H
#define KILN_PASSES_AUTODIFF_H

#include "ir/Graph.h"

namespace kiln {

/// Appends the gradient of `objective` (a float scalar) with respect to each
/// node of `wrt`, returning them in order. A node the objective does not
/// depend on gets a zero constant. The graph must be f32 (the rules build
/// f32 constants); differentiate checks it.
std::vector<Node *> buildGradients(Graph &g, Node *objective,
                                   llvm::ArrayRef<Node *> wrt);

/// Records g.gradients for every parameter and for the inputs named in
/// `wrtInputs` (float inputs only). Errors: no objective, gradients already
/// present, an f64 value anywhere in g (expectF32), an unknown or integer
/// input.
llvm::Error differentiate(Graph &g, llvm::ArrayRef<std::string> wrtInputs = {});

} // namespace kiln

#endif
