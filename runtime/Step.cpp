//===- Step.cpp - One step the runtime drives -----------------------------===//
//
// The interpreter's step copies the bound buffers into tensors, evaluates
// only what the objective, output and updates need, and writes the updates
// back, so it behaves as the compiled step does, only slower.
//
//===----------------------------------------------------------------------===//
#include "runtime/Step.h"
#include "runtime/Interpreter.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringSet.h"
#include <cstring>

using namespace kiln;

Step::~Step() = default;

int64_t Step::findLeaf(llvm::StringRef name) const {
  auto it = leafIndex_.find(name);
  return it == leafIndex_.end() ? -1 : int64_t(it->second);
}

void Step::addLeaf(Leaf l) {
  leafIndex_.try_emplace(l.name, leaves_.size());
  leaves_.push_back(std::move(l));
  buffers_.push_back(nullptr);
}

void Step::describe(const Graph &g) {
  llvm::StringSet<> updated;
  for (const StateUpdate &u : g.updates)
    updated.insert(u.name);
  for (const auto &n : g.nodes)
    if (n->info().flags & OpFlags::Leaf && n->op != Op::Constant) {
      std::string name = n->stringAttr("name");
      addLeaf({n->op, name, n->type, updated.contains(name)});
    }
  if (g.output) {
    hasOutput_ = true;
    outputType_ = g.output->type;
  }
}

llvm::Error Step::checkBound() const {
  for (size_t i = 0; i < leaves_.size(); ++i)
    if (!buffers_[i])
      return makeError("no buffer bound for " +
                       opInfo(leaves_[i].kind).mnemonic + " '" +
                       leaves_[i].name + "'");
  return llvm::Error::success();
}

InterpStep::InterpStep(const Graph &g) : graph(g) { describe(g); }

llvm::Error InterpStep::run(uint64_t seed, uint64_t step) {
  if (auto e = checkBound())
    return e;
  llvm::StringMap<Tensor> leaves;
  for (size_t i = 0; i < leaves_.size(); ++i) {
    Tensor t(leaves_[i].type.dtype, leaves_[i].type.shape);
    std::memcpy(t.raw(), buffers_[i], t.nbytes());
    leaves[leaves_[i].name] = std::move(t);
  }
  std::vector<const Node *> needed;
  for (const Node *root : graph.rootValues())
    needed.push_back(root);
  InterpOptions opts;
  opts.seed = seed;
  opts.step = step;
  opts.only = needed;
  auto values = interpret(graph, leaves, opts);
  if (!values)
    return values.takeError();
  values_ = std::move(*values);
  llvm::DenseMap<const Node *, size_t> index;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    index[graph.nodes[i].get()] = i;
  // Read every new value before writing any (an update may read a leaf
  // another one writes).
  std::vector<std::pair<size_t, Tensor>> writes;
  for (const StateUpdate &u : graph.updates)
    writes.push_back(
        {size_t(findLeaf(u.name)), values_[index[u.value]].cast(DType::F32)});
  for (auto &[leaf, t] : writes)
    std::memcpy(buffers_[leaf], t.raw(), t.nbytes());
  objective_ =
      graph.objective ? values_[index[graph.objective]].at(0) : double(NAN);
  if (graph.output)
    output_ = values_[index[graph.output]].cast(graph.output->type.dtype);
  return llvm::Error::success();
}

double InterpStep::objective() const { return objective_; }

const void *InterpStep::output() const {
  return hasOutput_ ? output_.raw() : nullptr;
}
