//===- Optimizers.h - The optimizers a train block can name -----*- C++ -*-===//
//
// torch.optim's optimizers, each defined once, in one block of
// Optimizers.cpp: its arguments with PyTorch's names and defaults, the state
// it keeps per parameter (under PyTorch's state names), the scalars that
// change from step to step, and its update as ordinary ops. The frontend
// checks a train block's optimizer against the table, the optimizer pass
// builds the update from it and the training loop computes the scalars
// each step.
//
// Scalars that change with the step (the learning rate under a schedule,
// Adam's bias corrections, SGD's first-step dampening) are scalar inputs of
// the training graph, named `optimizer.NAME`, so a schedule neither changes
// the printed IR nor recompiles. They are computed in float64 on the host,
// as PyTorch computes them in Python floats, and rounded once to float32.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_OPTIMIZERS_H
#define KILN_IR_OPTIMIZERS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln {

struct OptimizerArg {
  const char *name;
  std::optional<double> def; ///< None: required.
  bool isFlag = false;       ///< true/false (nesterov, centered)
};

struct OptimizerConfig;
class UpdateBuilder;

struct OptimizerInfo {
  const char *name;
  std::vector<OptimizerArg> args;
  /// The state kept per parameter, given the arguments.
  std::vector<std::string> (*states)(const OptimizerConfig &);
  /// The scalar inputs and their values at step t (1-based) with learning
  /// rate lr.
  std::vector<std::pair<std::string, double>> (*scalars)(
      const OptimizerConfig &, double lr, int64_t t);
  /// Appends one parameter's update.
  void (*update)(UpdateBuilder &);
};

/// sgd, adagrad, adadelta, rmsprop, adam, adamw, in that order; each one's
/// arguments in torch.optim's positional order.
llvm::ArrayRef<OptimizerInfo> optimizerTable();
const OptimizerInfo *findOptimizer(llvm::StringRef name);

/// An optimizer with every argument given or defaulted.
struct OptimizerConfig {
  std::string kind;
  std::map<std::string, double> args;
  /// An argument's value; every argument of the kind is present once
  /// validate() passes (asking for another is a Kiln bug).
  double arg(llvm::StringRef name) const;
  /// An error unless `kind` is known, every argument of it is given and
  /// none other, values are finite and non-negative, flags are 0 or 1,
  /// beta1, beta2, alpha and rho are below 1, and Nesterov has momentum and
  /// no dampening.
  llvm::Error validate() const;
  /// The per-parameter state, as PyTorch names it (exp_avg, ...).
  std::vector<std::string> stateNames() const;
  /// The scalar inputs the update reads, without the `optimizer.` prefix.
  std::vector<std::string> scalarNames() const;
  /// The scalars' values at step `step` (1-based) with learning rate `lr`,
  /// in scalarNames() order.
  std::vector<double> scalars(double lr, int64_t step) const;
  /// Every argument but lr (an input), as the optimizer pass's options:
  /// `kind=adam,beta1=0.9,...`.
  std::string passOptions() const;
  /// `adam(lr = 0.001, beta1 = 0.9, ...)`.
  std::string str() const;
};

/// The name of the scalar input `name` ("lr" -> "optimizer.lr").
std::string optimizerInputName(llvm::StringRef name);

class Graph;
class Node;

/// Appends the update of parameter `param`, whose gradient is `grad`, to g:
/// its state leaves `NAME.STATE` (zeros), the update as ordinary ops, and an
/// `update` record for the parameter and each state. `scalars` holds the
/// scalar inputs, by scalarNames(). `opt` must validate().
void buildUpdate(Graph &g, const OptimizerConfig &opt, Node *param, Node *grad,
                 const std::map<std::string, Node *> &scalars);

} // namespace kiln

#endif
