//===- JIT.h - Compiling graphs to native code with ORC LLJIT ----*- C++
//-*-===//
//
// The JIT owns a TargetMachine (this CPU and its features by default, or the
// CPU that --mcpu/--mattr name), LLVM's optimisation pipeline, an LLJIT
// instance and the runtime's thread pool.
// compile() lowers a graph, optimises and compiles it, and caches the result
// under the graph's printed IR, so compiling an identical graph again costs a
// hash lookup.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_JIT_H
#define KILN_CODEGEN_JIT_H

#include "codegen/Codegen.h"
#include "ir/Tensor.h"
#include "runtime/Gemm.h"
#include "runtime/Step.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"
#include <memory>
#include <string>

namespace kiln {

class ThreadPool;

struct JITOptions {
  unsigned threads = 0; ///< 0: one per core
  /// Vector bits for loops and the GEMM micro-kernels. 0: LLVM's choice for
  /// loops and the CPU's widest vectors for the GEMM.
  unsigned vectorWidth = 0;
  /// The x86-64 CPU to compile for, by LLVM's name (znver3, skylake-avx512,
  /// x86-64-v3; as llc's -mcpu). Empty: this CPU, with the features it has.
  std::string cpu;
  /// Features added to or removed from the CPU's, as llc's -mattr:
  /// "+avx512f,-fma".
  std::string features;
};

/// Seconds spent in each compilation phase.
struct CompileTimes {
  /// The GEMM micro-kernels, compiled once per JIT: nonzero only for the
  /// first compilation that needed them.
  double gemm = 0;
  double lower = 0;    ///< graph IR to LLVM IR
  double optimize = 0; ///< LLVM's middle end (O3, vectorisers), in parallel
  double codegen = 0;  ///< LLVM's back end, in parallel, and linking
  double total() const { return gemm + lower + optimize + codegen; }
};

/// One compiled graph, immutable once compiled (the JIT's cache hands it to
/// every caller of an identical graph): the workspace belongs to whoever
/// runs it, a JITStep or one call of run().
class CompiledGraph {
public:
  /// Runs the step once with the given leaf values (by name; params, inputs
  /// and state, f32 or i32 as declared) and returns one tensor per root of
  /// the graph, in Graph::roots() order; the given values are not changed
  /// (updated leaves are copied first). Missing or mis-shaped leaves and
  /// out-of-range ids are errors, as in the interpreter. Allocates its own
  /// workspace, so concurrent calls are safe.
  llvm::Expected<std::vector<Tensor>> run(const llvm::StringMap<Tensor> &leaves,
                                          uint64_t seed = 0,
                                          uint64_t step = 0) const;

  const CompileTimes &times() const { return times_; }
  /// Where each node's value lives; `workspaceBytes` is what run() uses.
  const BufferPlan &plan() const { return plan_; }

private:
  friend class JIT;
  friend class JITStep;
  struct Leaf {
    std::string kind, name; ///< "param", "input", "state"
    TensorType type;
    int64_t slot;
    bool updated;
  };
  struct Root {
    TensorType type;
    int64_t slot;
  };
  /// The message of a node that can fail at run time (an id or label out of
  /// range): before + the value + after.
  struct FailMessage {
    std::string before, after;
  };
  /// Runs the entry on a buffer table whose leaf and workspace slots are
  /// set; an error if a node met a bad id or label.
  llvm::Error call(void **bufs, uint64_t seed, uint64_t step) const;
  /// A workspace for one runner, or an error if memory is short.
  llvm::Expected<std::unique_ptr<char, void (*)(void *)>>
  allocateWorkspace() const;
  void (*entry_)(void **, void *) = nullptr;
  BufferPlan plan_;
  std::vector<Leaf> leaves_;
  std::vector<Root> roots_;
  int64_t objectiveRoot_ = -1, outputRoot_ = -1; ///< indices into roots_
  std::vector<FailMessage> failMessages_;        ///< per node
  ThreadPool *pool_ = nullptr;
  std::string name_;
  CompileTimes times_;
};

/// A compiled step with its own workspace and buffer table, for a runtime
/// session: bind each leaf once, then run() writes nothing but the
/// workspace and the updated leaves' buffers.
class JITStep : public Step {
public:
  /// `compiled` must outlive the step (the JIT keeps it).
  static llvm::Expected<std::unique_ptr<JITStep>>
  create(const CompiledGraph &compiled);
  llvm::Error run(uint64_t seed, uint64_t step) override;
  double objective() const override;
  const void *output() const override;

private:
  explicit JITStep(const CompiledGraph &compiled);
  const CompiledGraph &compiled;
  std::unique_ptr<char, void (*)(void *)> workspace{nullptr, &std::free};
  std::vector<void *> bufs; ///< one per slot
};

class JIT {
public:
  static llvm::Expected<std::unique_ptr<JIT>>
  create(const JITOptions &opts = {});
  ~JIT();

  /// Compiles g (or finds it in the cache) to run on this CPU: an error
  /// if the target has features this CPU lacks (checkRunnable).
  llvm::Expected<const CompiledGraph &> compile(const Graph &g);

  /// Success if this CPU can run the target's code; else an error naming
  /// the features it lacks. Printing code (llvmIR, assembly) needs no such
  /// CPU.
  llvm::Error checkRunnable() const;

  /// g's LLVM module, before or after the optimisation pipeline.
  llvm::Expected<std::string> llvmIR(const Graph &g, bool optimized);
  /// g's native assembly for this CPU.
  llvm::Expected<std::string> assembly(const Graph &g);

  /// The name of the CPU the code is compiled for.
  llvm::StringRef cpu() const;
  /// Whether the target has a feature ("avx512f").
  bool hasFeature(llvm::StringRef feature) const;
  unsigned threads() const;
  /// Graphs compiled so far (cache misses).
  unsigned compilations() const;

  /// The GEMM micro-tile generated for this CPU and vector width.
  const MicroTile &gemmTile() const;
  /// Those micro-kernels compiled on their own (once), for calling
  /// kiln::gemm directly, as the GEMM tests and benchmarks do.
  llvm::Expected<GemmKernels> gemmKernels();

  struct Impl;

private:
  explicit JIT(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace kiln

#endif
