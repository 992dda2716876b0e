//===- OpRules.h - Per-op rules: shape inference and evaluation --*- C++
//-*-===//
//
// Each op in Ops.def has a block of rules in ir/ops/<Family>.cpp: a shape
// rule (which is also its verifier) and a reference evaluation in float32 and
// float64. The families register their blocks into one table here; a unit
// test walks Ops.def and fails if an op lacks a rule.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_OPRULES_H
#define KILN_IR_OPRULES_H

#include "ir/Grad.h"
#include "ir/Graph.h"
#include "ir/Tensor.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"
#include <array>

namespace kiln {

/// Per-run facts an evaluation may need (dropout's randomness).
struct EvalContext {
  /// Values of inputs, params and state, by name, already in the
  /// interpreter's precision.
  const llvm::StringMap<Tensor> *leaves = nullptr;
  /// The operands of the fused node whose body is being evaluated: what its
  /// `arg {index}` leaves read.
  llvm::ArrayRef<const Tensor *> args;
  /// The results after the first of each fused node evaluated so far with
  /// several (`result {index}` reads element index - 1).
  llvm::DenseMap<const Node *, std::vector<Tensor>> results;
  uint64_t seed = 0; ///< Dropout's randomness: seed and step.
  uint64_t step = 0;
  std::string
      error; ///< Set by a rule that meets bad data (an id out of range).
  void fail(const llvm::Twine &msg) {
    if (error.empty())
      error = msg.str();
  }
};

/// Infers (and so verifies) the result type of a node from its operands'
/// types and its attributes. Leaves return their own type.
using ShapeFn = llvm::Expected<TensorType> (*)(const Node &);

/// Evaluates a node. Float tensors hold T; integer tensors hold int32.
/// `out` arrives allocated with the node's shape.
template <typename T>
using EvalFn = void (*)(const Node &, llvm::ArrayRef<const Tensor *> in,
                        Tensor &out, EvalContext &ctx);

struct OpRules {
  ShapeFn shape = nullptr;
  EvalFn<float> evalF32 = nullptr;
  EvalFn<double> evalF64 = nullptr;
  GradFn grad = nullptr;
};

/// The rules of an op (members are null where a rule is missing).
const OpRules &opRules(Op op);

/// A family registers its ops' rules.
using RuleTable = std::array<OpRules, kNumOps>;
void registerLeafRules(RuleTable &t);
void registerElementwiseRules(RuleTable &t);
void registerReduceRules(RuleTable &t);
void registerShapeRules(RuleTable &t);
void registerLinalgRules(RuleTable &t);
void registerConvRules(RuleTable &t);
void registerNetworkRules(RuleTable &t);
void registerLossRules(RuleTable &t);
void registerFusedRules(RuleTable &t);

/// Whether an op may be in the body of an elementwise fused kernel: args,
/// constants, elementwise ops with a scalar function, and the data movement
/// a kernel reads through by index maps (broadcast, transpose, slice,
/// reshape).
bool fusesElementwise(Op op);
/// Whether op computes each element from its operands' elements at the same
/// index with a scalar function (ir/ops/Scalar.h).
bool isScalarOp(Op op);
/// The values a fused node's body returns: its results, in order.
llvm::SmallVector<const Node *, 4> bodyResults(const Graph &body);
/// The arg of a fused node's body that reads operand k (null if none).
const Node *bodyArg(const Graph &body, size_t k);
/// The [R, C] shape a rows kernel's body runs over: that of its first value
/// other than an arg, a constant or a loss, else its losses' logits; null
/// if it has none.
const Shape *rowsDomain(const Graph &body);

/// Both evaluation instantiations of a templated rule.
#define KILN_EVAL(fn) &fn<float>, &fn<double>

// Helpers shared by the families' shape rules.
llvm::Expected<TensorType> sameAsOperand(const Node &n);
/// An axis in [-rank, rank) normalised to [0, rank), or an error naming op.
llvm::Expected<int64_t> normaliseAxis(const Node &n, int64_t axis,
                                      int64_t rank);
llvm::Error expectFloat(const Node &n, unsigned operand);
/// A shape every dimension of which is at least 1, with at most
/// kMaxElements elements.
llvm::Error checkShape(const Node &n, llvm::ArrayRef<int64_t> shape);
llvm::Error expectRank(const Node &n, unsigned operand, int64_t rank);
/// Row-major strides of a shape.
Shape stridesOf(llvm::ArrayRef<int64_t> shape);
/// For each element of `shape` in row-major order, base + sum(idx * strides):
/// the one index walk behind broadcast, transpose, slice and reductions.
std::vector<int64_t> stridedOffsets(llvm::ArrayRef<int64_t> shape,
                                    llvm::ArrayRef<int64_t> strides,
                                    int64_t base = 0);
/// The axes a reduction (sum, mean, max) reduces, normalised and sorted;
/// all of them when its `axes` attribute is empty.
llvm::Expected<Shape> reducedAxes(const Node &n);

/// splitmix64's finaliser: dropout's counter-based generator.
uint64_t splitmix64(uint64_t z);
/// The key of one dropout op in one step: element i draws
/// (splitmix64(key ^ i) >> 11) * 2^-53. The interpreter and compiled code
/// share it, so their masks agree element for element.
uint64_t dropoutKey(uint64_t runSeed, int64_t opSeed, uint64_t step);

/// out[i] = src[offsets[i]], for any dtype.
void gatherElements(const Tensor &src, Tensor &out,
                    llvm::ArrayRef<int64_t> offsets);

} // namespace kiln

#endif
