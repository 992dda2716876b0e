//===- Metrics.h - The per-epoch metrics CSV and its plot -------*- C++ -*-===//
//
// Training writes one CSV row per epoch (the header DESIGN.md fixes) and
// draws the curves to a PNG. `--resume` reads the CSV back so that the rows
// of earlier epochs survive the restart.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_METRICS_H
#define KILN_RUNTIME_METRICS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include <cmath>
#include <cstdint>
#include <vector>

namespace kiln {

/// One row of the metrics CSV. NaN marks a value that was not measured (no
/// validation data, or an output that is not class scores): written as an
/// empty field.
struct EpochMetrics {
  int64_t epoch = 0; ///< 1-based
  double trainLoss = NAN, testLoss = NAN, testAccuracy = NAN, seconds = NAN,
         msPerStep = NAN;
};

/// The header DESIGN.md fixes.
inline constexpr const char *kMetricsHeader =
    "epoch,train_loss,test_loss,test_accuracy,seconds,ms_per_step";

/// Writes the header and one row per epoch (losses and accuracy with 6
/// significant digits, seconds with 3 decimals, milliseconds with 4),
/// atomically (see writeFileAtomically).
llvm::Error writeMetricsCsv(llvm::StringRef path,
                            llvm::ArrayRef<EpochMetrics> rows);

/// Reads a file writeMetricsCsv wrote (for --resume, which keeps earlier
/// epochs' rows); errors name the file and line.
llvm::Expected<std::vector<EpochMetrics>> readMetricsCsv(llvm::StringRef path);

/// An 8-bit RGB colour.
struct PlotColour {
  uint8_t r, g, b;
};
/// The colours plotMetrics draws each series in (tests look for them).
inline constexpr PlotColour kTrainLossColour{31, 119, 180};
inline constexpr PlotColour kTestLossColour{255, 127, 14};
inline constexpr PlotColour kTestAccuracyColour{44, 160, 44};

/// Draws the curves to a PNG with cairo: the left panel train and test loss
/// against epoch, the right panel test accuracy, with tick labels, a legend
/// and the title `title`. Non-finite values are skipped (a gap in the line);
/// a series of one epoch is one point. Errors name the path.
llvm::Error plotMetrics(llvm::StringRef path, llvm::ArrayRef<EpochMetrics> rows,
                        llvm::StringRef title);

} // namespace kiln

#endif
