//===- Session.h - A training session's buffers and steps -------*- C++ -*-===//
//
// A session owns what persists across training steps: the parameters, the
// optimizer state and the batch-norm statistics (the store), each in one
// 64-byte-aligned buffer under its name, plus the step counter. Steps (the
// training step, the evaluation step, their variants for a last partial
// batch) are attached once: their parameters and state are bound to the
// store's buffers, so a training step updates them in place and an
// evaluation step reads the same bytes, and each of their inputs gets a
// buffer of its own that the caller fills before each run, by index.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_SESSION_H
#define KILN_RUNTIME_SESSION_H

#include "runtime/Safetensors.h"
#include "runtime/Step.h"
#include <memory>

namespace kiln {

/// A zero-filled, 64-byte-aligned buffer of one tensor's elements.
class AlignedBuffer {
public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(const TensorType &type);
  void *data() { return bytes.get(); }
  const void *data() const { return bytes.get(); }
  template <typename T> T *as() { return static_cast<T *>(data()); }
  template <typename T> const T *as() const {
    return static_cast<const T *>(data());
  }
  size_t size() const { return size_; }

private:
  std::unique_ptr<char, void (*)(void *)> bytes{nullptr, &std::free};
  size_t size_ = 0;
};

class Session {
public:
  /// One named buffer of the store.
  struct Entry {
    std::string name;
    Op kind; ///< Param or State
    TensorType type;
    AlignedBuffer buffer;
  };

  /// Attaches a step: binds its parameters and state to the store (adding
  /// zero-filled entries for names it does not hold yet) and gives each
  /// input a buffer. A name the store holds with another type or kind is an
  /// error. Returns the step's index.
  llvm::Expected<size_t> attach(std::unique_ptr<Step> step);
  Step &step(size_t i) { return *steps[i].step; }
  size_t numSteps() const { return steps.size(); }

  /// The index of step i's input `name` among its leaves (resolve once,
  /// then use input()), or an error naming the step's inputs.
  llvm::Expected<size_t> inputIndex(size_t step, llvm::StringRef name) const;
  /// The buffer of leaf `leaf` (an input) of step i.
  void *input(size_t step, size_t leaf) {
    return steps[step].inputs[leaf].data();
  }

  /// Runs step i with dropout's seed and the session's step counter.
  llvm::Error run(size_t step, uint64_t seed) {
    return steps[step].step->run(seed, uint64_t(stepCount));
  }

  /// The store, in the order entries were added.
  llvm::ArrayRef<std::unique_ptr<Entry>> store() const { return entries; }
  Entry *find(llvm::StringRef name);
  /// The store as tensors (a copy), by name.
  TensorMap snapshot() const;
  /// Sets store entries from tensors of the same names and shapes. Every
  /// tensor must name an entry unless `partial`; an error lists every
  /// mismatched name and shape.
  llvm::Error load(const TensorMap &tensors, bool partial = false);

  /// Optimizer steps taken so far (the next training step is stepCount + 1).
  int64_t stepCount = 0;

private:
  struct Attached {
    std::unique_ptr<Step> step;
    std::vector<AlignedBuffer> inputs; ///< per leaf; empty unless an input
  };
  std::vector<Attached> steps;
  std::vector<std::unique_ptr<Entry>> entries;
  llvm::StringMap<Entry *> byName; ///< the entries by name
};

} // namespace kiln

#endif
