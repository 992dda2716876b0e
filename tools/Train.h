//===- Train.h - kiln train and kiln eval ------------------------*- C++
//-*-===//
//
// The training loop behind `kiln train` and the evaluation behind
// `kiln eval`: data, compiled steps in a runtime Session, schedules,
// checkpoints, metrics and progress.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TOOLS_TRAIN_H
#define KILN_TOOLS_TRAIN_H

#include "frontend/Train.h"
#include <functional>

namespace kiln {

/// The model the driver opened, as the trainer needs it.
struct ModelSource {
  std::string path;   ///< the model file, for messages
  TrainConfig config; ///< its train block, with the flags applied
  /// "FILE:LINE:COL: " of the train block's `data`, for errors about it.
  std::string dataLocation;
  /// Lowers the model at batch size `batch`, for training or evaluation;
  /// null after reporting errors.
  std::function<std::unique_ptr<Graph>(int64_t batch, bool train)> lower;
};

/// `kiln train`: the exit code.
int runTrainCommand(ModelSource &model);
/// `kiln eval`: the exit code.
int runEvalCommand(ModelSource &model);

} // namespace kiln

#endif
