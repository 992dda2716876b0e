//===- CSE.cpp - Common subexpression elimination -------------------------===//
//
// Two ops compute the same value when they have the same op, operands,
// attributes and type. Named leaves are never merged (each is its own
// tensor); dropout ops differ by their seed attribute, so they never merge.
//  1. Walk nodes in order, keying each by (op, operands, attributes).
//  2. A node whose key was seen is replaced by the first one.
//  3. Erase the replaced nodes.
//
//===----------------------------------------------------------------------===//
#include "ir/Printer.h"
#include "passes/Passes.h"
#include "llvm/ADT/DenseSet.h"
#include <map>

using namespace kiln;

namespace {

std::string keyOf(const Node &n,
                  const llvm::DenseMap<const Node *, unsigned> &ids) {
  std::string key;
  llvm::raw_string_ostream os(key);
  os << n.info().mnemonic << ":" << n.type.str();
  for (const Node *o : n.operands)
    os << " %" << ids.lookup(o);
  for (const Attr &a : n.attrs) {
    os << " " << a.name << "=";
    printAttrValue(a.value, os);
  }
  if (n.body)
    printGraph(*n.body, os);
  return key;
}

} // namespace

bool kiln::runCSE(Graph &g) {
  llvm::DenseMap<const Node *, unsigned> ids;
  llvm::DenseMap<Node *, Node *> replaced;
  std::map<std::string, Node *> seen;
  llvm::DenseSet<const Node *> keep;
  auto resolve = [&](Node *n) {
    return replaced.lookup(n) ? replaced.lookup(n) : n;
  };
  for (auto &np : g.nodes) {
    Node *n = np.get();
    ids[n] = unsigned(ids.size());
    // Nodes are in topological order, so operands are already resolved.
    for (Node *&o : n->operands)
      o = resolve(o);
    bool named = n->op == Op::Input || n->op == Op::Param || n->op == Op::State;
    auto [it, fresh] = seen.try_emplace(named ? "" : keyOf(*n, ids), n);
    if (named || fresh)
      keep.insert(n);
    else
      replaced[n] = it->second;
  }
  if (replaced.empty())
    return false;
  for (Node **root : g.roots())
    *root = resolve(*root);
  eraseNodesExcept(g, keep);
  return true;
}
