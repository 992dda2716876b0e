//===- Checkpoint.h - Saving and resuming a training run --------*- C++ -*-===//
//
// A checkpoint is safetensors: the session's store (parameters, optimizer
// state, batch-norm statistics) under their names, and in __metadata__
// where the run stands and the settings it ran with. Resuming checks the
// settings, so a resumed run is the run it continues.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TOOLS_CHECKPOINT_H
#define KILN_TOOLS_CHECKPOINT_H

#include "runtime/Metrics.h"
#include "tools/TrainSteps.h"

namespace kiln::train {

/// Where a run stands: everything a checkpoint restores besides tensors.
struct Progress {
  int64_t epoch = 0;        ///< epochs completed
  int64_t batchInEpoch = 0; ///< batches of epoch `epoch` done
  double epochLossSum = 0;  ///< of those batches, sum of loss * size
  int64_t epochExamples = 0;
  double epochSeconds = 0;         ///< of those batches (not in checkpoints)
  double bestValidLoss = INFINITY; ///< early stopping
  int64_t badEpochs = 0;
  /// The schedule's length in steps when the checkpoint was written.
  int64_t scheduleSteps = 0;
  std::vector<EpochMetrics> metrics;
};

/// The model's identity: a hash of its training graph at batch size
/// `batch`, without source locations (the same file under another path is
/// the same model).
llvm::Expected<std::string> modelHash(const ModelSource &m, int64_t batch);

/// What a run is, for a resumed run to agree with: the data, the split,
/// the batch, the seed, the optimizer with every argument, the schedule,
/// mixing, early stopping and shuffling. One "key=value" per setting.
std::vector<std::string> runSettings(const ModelSource &m, const RunData &d,
                                     bool shuffle);

/// Writes the session's store and `p` (atomically).
llvm::Error saveCheckpoint(llvm::StringRef path, const Session &session,
                           const ModelSource &m, const Progress &p,
                           llvm::ArrayRef<std::string> settings,
                           llvm::StringRef hash);

/// Reads a checkpoint into the session. With `resume` (the run's settings),
/// also restores `p` and the step count, and every setting that differs is
/// an error; without, the checkpoint need only hold what the session's
/// steps read (eval). Mismatched names and shapes are listed in one error.
llvm::Error loadCheckpoint(llvm::StringRef path, Session &session,
                           const ModelSource &m, Progress &p,
                           const std::vector<std::string> *resume,
                           int64_t batchesPerEpoch);

} // namespace kiln::train

#endif
