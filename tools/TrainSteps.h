//===- TrainSteps.h - Data, compiled steps and evaluation of a run -*- C++
//-*-===//
//
// The parts of a training run that `kiln train` and `kiln eval` share: the
// data with its validation examples, the compiled steps of each batch size
// attached to one Session, and evaluation.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TOOLS_TRAINSTEPS_H
#define KILN_TOOLS_TRAINSTEPS_H

#include "codegen/JIT.h"
#include "runtime/Data.h"
#include "runtime/Session.h"
#include "tools/Train.h"
#include <map>

namespace kiln::train {

/// Some examples of a dataset, by row.
struct Subset {
  const Dataset *data = nullptr;
  std::vector<int64_t> rows;
  size_t size() const { return rows.size(); }
};

/// The data of a run: what trains and what validates.
struct RunData {
  DataSplits splits;
  Subset train, valid;
  std::string validName; ///< "test" or "validation"
};

/// Reads the train block's data and chooses the validation examples: the
/// test split, or `split` of the training data by a seeded shuffle (with
/// `preferTest`, the test split wherever there is one: kiln eval).
llvm::Expected<std::unique_ptr<RunData>> loadRunData(const ModelSource &m,
                                                     bool preferTest = false);

/// A step attached to the session, with its inputs resolved once.
struct StepSlots {
  size_t index = 0;
  int64_t batch = 0;
  size_t x = 0, y = 0;
  int64_t partner = -1, lambda = -1; ///< mixup's inputs, or -1
  std::vector<size_t> scalars;       ///< the optimizer's, in order
  const Graph *graph = nullptr;      ///< for --check-numerics
};

/// The steps of one run, built on demand per batch size, over one Session.
class Steps {
public:
  /// jit: null for the interpreter.
  Steps(const ModelSource &m, JIT *jit) : model(m), jit(jit) {}
  llvm::Expected<StepSlots *> train(int64_t batch) {
    return get(trainSteps, batch, /*train=*/true);
  }
  llvm::Expected<StepSlots *> eval(int64_t batch) {
    return get(evalSteps, batch, /*train=*/false);
  }
  Session session;
  /// The lowered training graph at the full batch size (for its initial
  /// values).
  std::unique_ptr<Graph> forward;

private:
  llvm::Expected<StepSlots *>
  get(std::map<int64_t, std::unique_ptr<StepSlots>> &cache, int64_t batch,
      bool train);

  const ModelSource &model;
  JIT *jit;
  std::map<int64_t, std::unique_ptr<StepSlots>> trainSteps, evalSteps;
  std::vector<std::unique_ptr<Graph>> graphs;
};

/// An error unless the data's examples fill the input of `slots`'s step
/// (`batch` examples), in training and validation data alike.
llvm::Error checkExampleSize(Steps &steps, const StepSlots &slots,
                             const RunData &data, const ModelSource &m);

struct Score {
  double loss = NAN, accuracy = NAN;
};

/// Mean loss and accuracy over a subset, in order, in batches of `batch`
/// (the last one smaller). Accuracy needs class scores [B, C] as output.
llvm::Expected<Score> evaluate(Steps &steps, const Subset &s, int64_t batch);

} // namespace kiln::train

#endif
