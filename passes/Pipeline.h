//===- Pipeline.h - The default pass pipeline --------------------*- C++
//-*-===//
//
// The passes that turn a lowered model into its training step, listed once
// (Pipeline.cpp) for the driver, the tests and the benchmarks.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_PIPELINE_H
#define KILN_PASSES_PIPELINE_H

#include "ir/Optimizers.h"
#include "passes/Passes.h"

namespace kiln {

/// What a train block adds to the training pipeline.
struct TrainingOptions {
  /// The optimizer whose update ends the step, or null (gradients only).
  const OptimizerConfig *optimizer = nullptr;
  /// With mixup or cutmix: the labels input whose targets are mixed.
  std::string mixLabels;
  /// Inputs autodiff also differentiates (kiln's --wrt).
  std::vector<std::string> wrtInputs;
  /// With an optimizer: drop the gradients its updates read (the step
  /// `kiln train` runs, which returns no gradients).
  bool dropGradients = false;
};

/// The training pipeline as `--passes=` text, with the optional passes and
/// their options filled in from `opts`.
std::string trainingPipelineText(const TrainingOptions &opts = {});

/// The training pipeline's steps.
llvm::Expected<std::vector<PipelineStep>>
trainingPipeline(const TrainingOptions &opts = {});

/// The kernel pipeline, which turns a training graph into the kernels the
/// JIT compiles (fused nodes); `kiln dump --stage=opt` shows its result.
/// The training graph itself stays unfused, for the interpreter's
/// diagnostics and gradient checks.
llvm::Expected<std::vector<PipelineStep>> kernelPipeline();

/// Runs the kernel pipeline on g (verified after it).
llvm::Error formKernels(Graph &g);

} // namespace kiln

#endif
