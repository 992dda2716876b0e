//===- Verifier.cpp - Graph invariants ------------------------------------===//
//
// Re-runs every node's shape rule: the rules are the single statement of what
// a well-formed op is, so the verifier, the frontend and the IR parser agree.
//
//===----------------------------------------------------------------------===//
#include "ir/Verifier.h"
#include "ir/OpRules.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringSet.h"

using namespace kiln;

llvm::Error kiln::verifyGraph(const Graph &g, bool isBody) {
  llvm::Error all = llvm::Error::success();
  llvm::DenseMap<const Node *, unsigned> ids;
  auto fail = [&](const Node *n, const llvm::Twine &msg) {
    std::string where;
    if (n) {
      where = "%" + std::to_string(ids.lookup(n));
      if (n->loc.isKnown())
        where += " (" + n->loc.str() + ")";
      where += ": ";
    }
    all = llvm::joinErrors(std::move(all), makeError(where + msg));
  };
  llvm::StringSet<> leafNames;
  for (auto &np : g.nodes) {
    const Node *n = np.get();
    unsigned id = ids.size();
    for (const Node *o : n->operands)
      if (!ids.count(o))
        fail(n, "operand is not defined before its use");
    ids[n] = id;
    const OpInfo &info = n->info();
    if (info.arity >= 0 && size_t(info.arity) != n->operands.size()) {
      fail(n, "'" + info.mnemonic + "' takes " + llvm::Twine(info.arity) +
                  " operands");
      continue;
    }
    if (auto *name = n->findAttr("name"); name && (info.flags & Leaf))
      if (auto *s = std::get_if<std::string>(name);
          s && !leafNames.insert(*s).second)
        fail(n, "the name '" + *s + "' is used by two leaves");
    if (n->op == Op::Arg && !isBody)
      fail(n, "'arg' is only legal in the body of a fused node");
    auto type = opRules(n->op).shape(*n);
    if (!type)
      fail(n, llvm::toString(type.takeError()));
    else if (*type != n->type)
      fail(n, "type " + n->type.str() + " does not match the inferred " +
                  type->str());
  }
  if (g.objective &&
      (!ids.count(g.objective) || !g.objective->type.shape.empty() ||
       !isFloat(g.objective->type.dtype)))
    fail(nullptr, "the objective must be a float scalar defined in the graph");
  if (g.output && !ids.count(g.output))
    fail(nullptr, "the output is not defined in the graph");
  // A step updates state (batch norm's statistics, optimizer state) and,
  // with an optimizer, parameters; each at most once.
  llvm::StringSet<> updated;
  LeafIndex leaves(g);
  for (const StateUpdate &u : g.updates) {
    Node *s = leaves.find(Op::State, u.name);
    if (!s)
      s = leaves.find(Op::Param, u.name);
    if (!s)
      fail(nullptr, "update of unknown state or parameter '" + u.name + "'");
    else if (!ids.count(u.value) || u.value->type != s->type)
      fail(nullptr,
           "update of '" + u.name + "' must have type " + s->type.str());
    if (!updated.insert(u.name).second)
      fail(nullptr, "'" + u.name + "' is updated twice");
  }
  for (const NamedGradient &gr : g.gradients) {
    Node *leaf = leaves.find(Op::Param, gr.name);
    if (!leaf)
      leaf = leaves.find(Op::Input, gr.name);
    if (!leaf)
      fail(nullptr, "gradient of unknown parameter or input '" + gr.name + "'");
    else if (!ids.count(gr.value) || gr.value->type != leaf->type)
      fail(nullptr,
           "gradient of '" + gr.name + "' must have type " + leaf->type.str());
  }
  return all;
}
