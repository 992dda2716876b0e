//===- Step.h - One step the runtime drives ----------------------*- C++
//-*-===//
//
// A training or evaluation step behind one interface, whether it is compiled
// code (codegen/JIT.h's JITStep) or the reference interpreter (InterpStep):
// the caller points each leaf at a buffer once, then runs the step as often
// as it likes. A run writes each updated leaf (parameters, optimizer state,
// batch-norm statistics) in place, in the caller's buffer, and leaves the
// objective and the output readable until the next run.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_STEP_H
#define KILN_RUNTIME_STEP_H

#include "ir/Graph.h"
#include "ir/Tensor.h"
#include "llvm/ADT/StringMap.h"
#include <cmath>

namespace kiln {

class Step {
public:
  struct Leaf {
    Op kind; ///< Input, Param or State
    std::string name;
    TensorType type;
    bool updated = false; ///< run() writes its new value into the buffer
  };

  virtual ~Step();
  /// The graph's inputs, parameters and state, in graph order.
  llvm::ArrayRef<Leaf> leaves() const { return leaves_; }
  /// The index of the leaf called `name`, or -1.
  int64_t findLeaf(llvm::StringRef name) const;
  /// Points leaf i at `data`: its type's elements, 64-byte aligned, alive
  /// as long as the step runs.
  void bind(size_t leaf, void *data) { buffers_[leaf] = data; }
  /// Runs once with dropout's seed and step. Errors: an unbound leaf, an
  /// out-of-range id or label.
  virtual llvm::Error run(uint64_t seed, uint64_t step) = 0;
  /// The objective after run(); NaN if the graph has none.
  virtual double objective() const = 0;
  /// The output's elements after run() (f32 or i32, outputType()), or
  /// null.
  virtual const void *output() const = 0;
  const TensorType *outputType() const {
    return hasOutput_ ? &outputType_ : nullptr;
  }

protected:
  /// Fills leaves_ and the output's type from g.
  void describe(const Graph &g);
  /// Appends a leaf (unbound) and indexes its name for findLeaf.
  void addLeaf(Leaf l);
  llvm::Error checkBound() const;
  std::vector<Leaf> leaves_;
  llvm::StringMap<size_t> leafIndex_; ///< name -> index into leaves_
  std::vector<void *> buffers_;
  TensorType outputType_;
  bool hasOutput_ = false;
};

/// A step evaluated by the reference interpreter in float32: slow, for
/// --backend=interp and as the oracle of the compiled step.
class InterpStep : public Step {
public:
  /// `g` must outlive the step.
  explicit InterpStep(const Graph &g);
  llvm::Error run(uint64_t seed, uint64_t step) override;
  double objective() const override;
  const void *output() const override;
  /// Every node's value after the last run (for --check-numerics).
  llvm::ArrayRef<Tensor> values() const { return values_; }

private:
  const Graph &graph;
  std::vector<Tensor> values_;
  Tensor output_;
  double objective_ = NAN;
};

} // namespace kiln

#endif
