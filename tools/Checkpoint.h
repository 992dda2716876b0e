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

/// Reads a checkpoint's tensors into the session: with `resume`, exactly
/// the session's store and the same model hash; else (eval) at least what
/// the session's steps read, and a different hash is a warning. Mismatched
/// names and shapes are listed in one error.
llvm::Error loadCheckpoint(llvm::StringRef path, Session &session,
                           const ModelSource &m, bool resume);

/// Before anything is compiled: the checkpoint's metadata for resuming a
/// run with `settings` (its batch size and every setting must be the
/// checkpoint's, listed if not; its position must fit `batchesPerEpoch`).
/// Fills `p` and `step` (the steps taken).
llvm::Error checkResume(llvm::StringRef path, const ModelSource &m,
                        llvm::ArrayRef<std::string> settings,
                        int64_t batchesPerEpoch, Progress &p, int64_t &step);

/// checkResume's work on a checkpoint's metadata, read from `path`, for a
/// run with batch size `batch`.
llvm::Error readProgress(llvm::StringRef path, const Metadata &metadata,
                         int64_t batch, llvm::ArrayRef<std::string> settings,
                         int64_t batchesPerEpoch, Progress &p, int64_t &step);

} // namespace kiln::train

#endif
