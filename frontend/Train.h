//===- Train.h - Train blocks ------------------------------------*- C++
//-*-===//
//
// A train block names a model and its training settings: data, batch,
// epochs, optimizer, schedule, validation split, early stopping, mixup or
// cutmix, and seed. They are checked here (unknown keys, bad values,
// optimizer arguments against ir/Optimizers.h's table with PyTorch's
// defaults) so a mistake is a located error long before training starts.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_FRONTEND_TRAIN_H
#define KILN_FRONTEND_TRAIN_H

#include "frontend/AST.h"
#include "ir/Optimizers.h"
#include "support/Diagnostics.h"
#include <map>

namespace kiln {

/// The default folder of the Fashion-MNIST files (Debian's package).
constexpr const char *kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Where a train block's examples come from.
struct DataSource {
  enum Kind { FashionMnist, Idx, Csv } kind = FashionMnist;
  std::string dir = kFashionMnistDir; ///< fashion_mnist
  /// idx: the training files and, optionally, a test split.
  std::string images, labels, testImages, testLabels;
  /// csv: the file, its label column and an optional test file.
  std::string path, label, test;
  /// `fashion_mnist(dir = "...")`, as written, for messages.
  std::string str() const;
};

/// A learning-rate schedule, as torch.optim.lr_scheduler defines them.
struct Schedule {
  enum Kind { Constant, Step, Cosine, Warmup } kind = Constant;
  int64_t every = 1;  ///< step: epochs between decays
  double gamma = 0.1; ///< step: the decay factor
  int64_t warmup = 0; ///< cosine and warmup: linear warm-up steps
  /// The learning rate at step `step` (1-based) of `total`, in epoch
  /// `epoch` (0-based), for the base rate `lr`.
  double at(double lr, int64_t step, int64_t total, int64_t epoch) const;
  std::string str() const;
};

struct TrainConfig {
  std::string model;
  llvm::SMLoc loc, dataLoc;
  DataSource data;
  int64_t batch = 0;
  int64_t epochs = 1;
  int64_t seed = 0;
  OptimizerConfig optimizer;
  Schedule schedule;
  double split = 0;      ///< share of the training data held out; 0: none
  int64_t earlyStop = 0; ///< patience in epochs; 0: never stop early
  double mixup = 0;      ///< Beta(alpha, alpha) of mixup; 0: off
  double cutmix = 0;     ///< Beta(alpha, alpha) of cutmix; 0: off
};

/// Checks every train block; returns the valid ones.
std::vector<TrainConfig> checkTrainBlocks(const Module &m, Diagnostics &diags);

/// Checks that a data source can feed the model's inputs (the lowered
/// graph): float examples and integer labels, one per batch row.
void checkDataFits(const TrainConfig &c, const Graph &g, Diagnostics &diags);

} // namespace kiln

#endif
