//===- Graph.h - Kiln's graph IR ---------------------------------*- C++
//-*-===//
//
// A Graph is a list of Nodes in topological order. Each Node is one SSA value:
// an op applied to earlier nodes, with attributes, a result type and the
// source location of the expression it came from. A graph also names its
// objective (`minimize`), its output (`return`) and state updates (batch
// norm's running statistics).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_GRAPH_H
#define KILN_IR_GRAPH_H

#include "ir/Types.h"
#include "support/Location.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Error.h"
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace kiln {

enum class Op {
#define OP(E, M, A, F) E,
#include "ir/Ops.def"
};

constexpr size_t kNumOps = 0
#define OP(E, M, A, F) +1
#include "ir/Ops.def"
    ;

/// Properties from the table's flags column.
enum OpFlags : unsigned {
  None = 0,
  Leaf = 1,
  Elementwise = 2,
  Commutative = 4,
  Reduction = 8,
  HasMode = 16,
  Loss = 32,
  /// Says which piece is in use (a 0/1 mask, a window maximum's position),
  /// so its value jumps: the gradient rules of piecewise ops (relu, abs,
  /// max, max_pool2d, ...) pick their piece with these.
  Selector = 64,
  /// Continuous, with kinks where the piece changes; its gradient rule
  /// picks the piece with selectors, and gradient rules never build one
  /// (so --check-grad finds every kink through the selectors).
  Piecewise = 128,
};

struct OpInfo {
  llvm::StringRef mnemonic;
  int arity; ///< -1: variadic.
  unsigned flags;
  llvm::StringRef description;
};

const OpInfo &opInfo(Op op);
/// All ops, in table order.
llvm::ArrayRef<Op> allOps();
std::optional<Op> opFromMnemonic(llvm::StringRef mnemonic);

/// Attribute values: integers, floats, integer lists and strings.
using AttrValue =
    std::variant<int64_t, double, llvm::SmallVector<int64_t, 4>, std::string>;

struct Attr {
  std::string name;
  AttrValue value;
  /// Set when findAttr returns it: the IR parser refuses an attribute that
  /// the op's shape rule, which checks every attribute an op has, never read.
  mutable bool read = false;
};

class Graph;

class Node {
public:
  Node();
  ~Node();
  Op op;
  TensorType type;
  llvm::SmallVector<Node *, 2> operands;
  llvm::SmallVector<Attr, 2> attrs; ///< Sorted by name.
  Location loc;
  /// A fused node's body: a graph of `arg {index}` leaves (one per operand)
  /// and the ops they feed, returning the node's value (and, for a node with
  /// several results, the values its `result` users read). Null for other
  /// ops.
  std::unique_ptr<Graph> body;

  const OpInfo &info() const { return opInfo(op); }
  const AttrValue *findAttr(llvm::StringRef name) const;
  /// Sets or replaces an attribute, keeping attrs sorted.
  void setAttr(llvm::StringRef name, AttrValue v);

  // Typed attribute access; the error names the op and attribute.
  llvm::Expected<int64_t> getInt(llvm::StringRef name) const;
  llvm::Expected<double> getFloat(llvm::StringRef name) const;
  llvm::Expected<llvm::SmallVector<int64_t, 4>>
  getInts(llvm::StringRef name) const;
  llvm::Expected<std::string> getString(llvm::StringRef name) const;
  /// Accessors for attributes the verifier has already checked.
  int64_t intAttr(llvm::StringRef name) const;
  double floatAttr(llvm::StringRef name) const;
  llvm::SmallVector<int64_t, 4> intsAttr(llvm::StringRef name) const;
  std::string stringAttr(llvm::StringRef name) const;
};

/// A value recorded under a name: a state buffer's new value after a
/// training step (`update`), or the gradient of a parameter or input
/// (`gradient`).
struct StateUpdate {
  std::string name;
  Node *value;
};
using NamedGradient = StateUpdate;

class Graph {
public:
  std::string name;
  std::vector<std::unique_ptr<Node>> nodes; ///< Topological order.
  Node *objective = nullptr;                ///< `minimize`, or null.
  Node *output = nullptr;                   ///< `return`, or null.
  /// A fused node's body only: its results after the first
  /// (`return %a, %b, %c`), which `result {index}` nodes read.
  std::vector<Node *> moreOutputs;
  std::vector<StateUpdate> updates;
  /// d objective / d leaf, for each parameter (and requested input), after
  /// autodiff.
  std::vector<NamedGradient> gradients;

  /// Every value the graph exposes: objective, output, updates, gradients.
  std::vector<Node **> roots();
  /// The values of roots(), in the same order.
  std::vector<const Node *> rootValues() const;

  /// Infers the type of a new node from its op, operands and attributes and
  /// appends it. Leaf nodes must be given their type.
  llvm::Expected<Node *> add(Op op, llvm::ArrayRef<Node *> operands,
                             llvm::ArrayRef<Attr> attrs, Location loc,
                             std::optional<TensorType> leafType = {},
                             std::unique_ptr<Graph> body = nullptr);

  /// Leaves of a kind, in order.
  std::vector<Node *> leaves(Op kind) const;
  /// The leaf (input, param or state) with this name, or null.
  Node *findLeaf(Op kind, llvm::StringRef name) const;
};

/// Leaves (inputs, params, states) by kind and name, for many lookups:
/// built in one pass over a graph, then kept up to date with add() by
/// whoever adds leaves. Graph::findLeaf is a linear search, which a loop
/// over every parameter must not repeat.
class LeafIndex {
public:
  LeafIndex() = default;
  explicit LeafIndex(const Graph &g);
  /// The leaf of this kind and name, or null.
  Node *find(Op kind, llvm::StringRef name) const;
  /// Records a leaf (the first of a kind and name stays).
  void add(Node *leaf);

private:
  llvm::StringMap<Node *> byName[3]; // input, param, state
};

/// A deep copy of g: its nodes (fused bodies included), roots, updates and
/// gradients.
std::unique_ptr<Graph> cloneGraph(const Graph &g);

/// An llvm::Error holding a message.
llvm::Error makeError(const llvm::Twine &msg);

} // namespace kiln

#endif
