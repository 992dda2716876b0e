//===- Pipeline.cpp - The default pass pipeline ---------------------------===//
//
// The training step is built and tidied by these passes, top to bottom.
//
//===----------------------------------------------------------------------===//
#include "passes/Pipeline.h"
#include "passes/Autodiff.h"

using namespace kiln;

static const char *const kTrainingPipeline[] = {
    // With mixup or cutmix: lambda * L(y) + (1 - lambda) * L(partner's y).
    "mix-targets",
    // The objective's gradient for every parameter, as ordinary ops.
    "autodiff",
    // Each parameter's update and its optimizer state (only when a train
    // block names an optimizer; its options come from there).
    "optimizer",
    // The step returns its loss and new values: the gradients the updates
    // read are no outputs (only with an optimizer, for `kiln train`).
    "drop-gradients",
    // Local identities: x * 1, x + 0, double transposes, no-op reshapes.
    "simplify",
    // One node per value, so the backward pass shares what the forward
    // computed.
    "cse",
    // Drop what reaches no objective, output, update or gradient.
    "dce",
};

static const char *const kKernelPipeline[] = {
    // Chains of elementwise ops, with the scalar broadcasts and reshapes
    // they read through, become one kernel each; values several kernels
    // need become further results of one.
    "fuse-elementwise",
    // Softmax, cross-entropy and the elementwise work on them (its
    // gradient) are one pass over each row.
    "fuse-rows",
    // The elementwise work on a matrix product runs on each block of the
    // product inside its GEMM; that around a reduction, in its loop.
    "fuse-epilogues",
};

llvm::Expected<std::vector<PipelineStep>> kiln::kernelPipeline() {
  std::string text;
  for (llvm::StringRef pass : kKernelPipeline)
    text += (text.empty() ? "" : ",") + pass.str();
  return parsePipeline(text);
}

llvm::Error kiln::formKernels(Graph &g) {
  auto steps = kernelPipeline();
  if (!steps)
    return steps.takeError();
  return runPasses(g, *steps, {}, llvm::nulls());
}

std::string kiln::trainingPipelineText(const TrainingOptions &opts) {
  std::string text;
  for (llvm::StringRef pass : kTrainingPipeline) {
    if ((pass == "optimizer" && !opts.optimizer) ||
        (pass == "drop-gradients" &&
         (!opts.optimizer || !opts.dropGradients)) ||
        (pass == "mix-targets" && opts.mixLabels.empty()))
      continue;
    text += (text.empty() ? "" : ",") + pass.str();
    if (pass == "optimizer")
      text += "<" + opts.optimizer->passOptions() + ">";
    if (pass == "mix-targets")
      text += "<labels=" + opts.mixLabels + ">";
  }
  return text;
}

llvm::Expected<std::vector<PipelineStep>>
kiln::trainingPipeline(const TrainingOptions &opts) {
  auto steps = parsePipeline(trainingPipelineText(opts));
  if (!steps)
    return steps.takeError();
  // Autodiff is configured here, under the same name: it also
  // differentiates the --wrt inputs, and a graph without an objective is an
  // error rather than left alone.
  std::vector<std::string> inputs = opts.wrtInputs;
  for (PipelineStep &s : *steps)
    if (s.name == "autodiff")
      s.run = [inputs](Graph &g) -> llvm::Expected<bool> {
        if (auto e = differentiate(g, inputs))
          return std::move(e);
        return true;
      };
  return steps;
}
