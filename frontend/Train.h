//===- Train.h - Train blocks ------------------------------------*- C++
//-*-===//
//
// A train block names a model and its training settings: data, batch,
// epochs, optimizer and seed. They are checked here (unknown keys, bad
// values, optimizer arguments with PyTorch's defaults) so a mistake is a
// located error long before training starts.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_FRONTEND_TRAIN_H
#define KILN_FRONTEND_TRAIN_H

#include "frontend/AST.h"
#include "frontend/Diagnostics.h"
#include <map>

namespace kiln {

struct TrainConfig {
  std::string model;
  llvm::SMLoc loc, dataLoc;
  std::string data;    ///< "fashion_mnist"
  std::string dataDir; ///< where its IDX files are
  int64_t batch = 0;
  int64_t epochs = 1;
  int64_t seed = 0;
  std::string optimizer;
  std::map<std::string, double>
      optimizerArgs; ///< every argument, defaults filled
};

/// The default folder of the Fashion-MNIST files (Debian's package).
constexpr const char *kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Checks every train block; returns the valid ones.
std::vector<TrainConfig> checkTrainBlocks(const Module &m, Diagnostics &diags);

/// Checks that a data source can feed the model's inputs (the lowered graph).
void checkDataFits(const TrainConfig &c, const Graph &g, Diagnostics &diags);

} // namespace kiln

#endif
