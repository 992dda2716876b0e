//===- Graph.cpp - Kiln's graph IR ----------------------------------------===//
//
// The op table's queries, attribute access and node construction. Building a
// node always runs its shape rule, so a Graph holds only well-typed nodes.
//
//===----------------------------------------------------------------------===//
#include "ir/Graph.h"
#include "ir/OpRules.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"
#include <algorithm>

using namespace kiln;

static const OpInfo kOpInfos[] = {
#define OP(E, M, A, F) {M, A, F, #E},
#include "ir/Ops.def"
};

static const Op kAllOps[] = {
#define OP(E, M, A, F) Op::E,
#include "ir/Ops.def"
};

const OpInfo &kiln::opInfo(Op op) { return kOpInfos[size_t(op)]; }
llvm::ArrayRef<Op> kiln::allOps() { return kAllOps; }

std::optional<Op> kiln::opFromMnemonic(llvm::StringRef m) {
  static const llvm::StringMap<Op> table = [] {
    llvm::StringMap<Op> t;
    for (Op op : kAllOps)
      t[opInfo(op).mnemonic] = op;
    return t;
  }();
  auto it = table.find(m);
  if (it == table.end())
    return std::nullopt;
  return it->second;
}

llvm::Error kiln::makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

const AttrValue *Node::findAttr(llvm::StringRef name) const {
  for (const Attr &a : attrs)
    if (a.name == name) {
      a.read = true;
      return &a.value;
    }
  return nullptr;
}

void Node::setAttr(llvm::StringRef name, AttrValue v) {
  for (Attr &a : attrs)
    if (a.name == name) {
      a.value = std::move(v);
      return;
    }
  auto pos = std::lower_bound(
      attrs.begin(), attrs.end(), name,
      [](const Attr &a, llvm::StringRef n) { return a.name < n; });
  attrs.insert(pos, Attr{name.str(), std::move(v)});
}

template <typename T>
static llvm::Expected<T> getAttr(const Node &n, llvm::StringRef name,
                                 const char *kind) {
  const AttrValue *v = n.findAttr(name);
  if (!v)
    return makeError("'" + n.info().mnemonic + "' needs attribute '" + name +
                     "'");
  if (auto *p = std::get_if<T>(v))
    return *p;
  // Integers are accepted where floats are expected.
  if constexpr (std::is_same_v<T, double>)
    if (auto *i = std::get_if<int64_t>(v))
      return double(*i);
  return makeError("attribute '" + name + "' of '" + n.info().mnemonic +
                   "' must be " + kind);
}

llvm::Expected<int64_t> Node::getInt(llvm::StringRef name) const {
  return getAttr<int64_t>(*this, name, "an integer");
}
llvm::Expected<double> Node::getFloat(llvm::StringRef name) const {
  return getAttr<double>(*this, name, "a number");
}
llvm::Expected<llvm::SmallVector<int64_t, 4>>
Node::getInts(llvm::StringRef name) const {
  return getAttr<llvm::SmallVector<int64_t, 4>>(*this, name,
                                                "a list of integers");
}
llvm::Expected<std::string> Node::getString(llvm::StringRef name) const {
  return getAttr<std::string>(*this, name, "a string");
}

// The verifier has run every shape rule, which reads every attribute the op
// uses, so these cannot fail on a verified graph.
int64_t Node::intAttr(llvm::StringRef name) const {
  return llvm::cantFail(getInt(name));
}
double Node::floatAttr(llvm::StringRef name) const {
  return llvm::cantFail(getFloat(name));
}
llvm::SmallVector<int64_t, 4> Node::intsAttr(llvm::StringRef name) const {
  return llvm::cantFail(getInts(name));
}
std::string Node::stringAttr(llvm::StringRef name) const {
  return llvm::cantFail(getString(name));
}

Node::Node() = default;
Node::~Node() = default;

llvm::Expected<Node *> Graph::add(Op op, llvm::ArrayRef<Node *> operands,
                                  llvm::ArrayRef<Attr> attrs, Location loc,
                                  std::optional<TensorType> leafType,
                                  std::unique_ptr<Graph> body) {
  const OpInfo &info = opInfo(op);
  if (info.arity >= 0 && size_t(info.arity) != operands.size())
    return makeError("'" + info.mnemonic + "' takes " +
                     llvm::Twine(info.arity) + " operands, not " +
                     llvm::Twine(operands.size()));
  auto node = std::make_unique<Node>();
  node->op = op;
  node->operands.assign(operands.begin(), operands.end());
  for (const Attr &a : attrs)
    node->setAttr(a.name, a.value);
  node->loc = loc;
  node->body = std::move(body);
  if (leafType)
    node->type = *leafType;
  auto type = opRules(op).shape(*node);
  if (!type)
    return type.takeError();
  // Every result, whatever its rule computed: dimensions >= 1 and at most
  // kMaxElements elements (Types.h), so later arithmetic cannot overflow.
  if (auto e = checkShape(*node, type->shape))
    return std::move(e);
  node->type = *type;
  nodes.push_back(std::move(node));
  return nodes.back().get();
}

std::vector<Node *> Graph::leaves(Op kind) const {
  std::vector<Node *> out;
  for (auto &n : nodes)
    if (n->op == kind)
      out.push_back(n.get());
  return out;
}

/// The slot of a leaf kind in LeafIndex::byName, or -1.
static int leafSlot(Op kind) {
  switch (kind) {
  case Op::Input:
    return 0;
  case Op::Param:
    return 1;
  case Op::State:
    return 2;
  default:
    return -1;
  }
}

LeafIndex::LeafIndex(const Graph &g) {
  for (const auto &n : g.nodes)
    if (leafSlot(n->op) >= 0)
      add(n.get());
}

Node *LeafIndex::find(Op kind, llvm::StringRef name) const {
  int slot = leafSlot(kind);
  return slot < 0 ? nullptr : byName[slot].lookup(name);
}

void LeafIndex::add(Node *leaf) {
  int slot = leafSlot(leaf->op);
  if (slot < 0)
    return;
  if (auto *v = leaf->findAttr("name"))
    if (auto *s = std::get_if<std::string>(v))
      byName[slot].try_emplace(*s, leaf);
}

Node *Graph::findLeaf(Op kind, llvm::StringRef name) const {
  for (auto &n : nodes)
    if (n->op == kind)
      if (auto *v = n->findAttr("name"))
        if (auto *s = std::get_if<std::string>(v); s && *s == name)
          return n.get();
  return nullptr;
}

std::vector<const Node *> Graph::rootValues() const {
  std::vector<const Node *> r;
  for (Node **n : const_cast<Graph *>(this)->roots())
    r.push_back(*n);
  return r;
}

std::vector<Node **> Graph::roots() {
  std::vector<Node **> r;
  for (Node **n : {&objective, &output})
    if (*n)
      r.push_back(n);
  for (StateUpdate &u : updates)
    r.push_back(&u.value);
  for (NamedGradient &gr : gradients)
    r.push_back(&gr.value);
  for (Node *&n : moreOutputs)
    r.push_back(&n);
  return r;
}

std::unique_ptr<Graph> kiln::cloneGraph(const Graph &g) {
  auto c = std::make_unique<Graph>();
  c->name = g.name;
  llvm::DenseMap<const Node *, Node *> to;
  for (auto &np : g.nodes) {
    auto n = std::make_unique<Node>();
    n->op = np->op;
    n->type = np->type;
    n->attrs = np->attrs;
    n->loc = np->loc;
    for (Node *o : np->operands)
      n->operands.push_back(to.lookup(o));
    if (np->body)
      n->body = cloneGraph(*np->body);
    to[np.get()] = n.get();
    c->nodes.push_back(std::move(n));
  }
  c->objective = to.lookup(g.objective);
  c->output = to.lookup(g.output);
  for (const StateUpdate &u : g.updates)
    c->updates.push_back({u.name, to.lookup(u.value)});
  for (const NamedGradient &gr : g.gradients)
    c->gradients.push_back({gr.name, to.lookup(gr.value)});
  for (const Node *n : g.moreOutputs)
    c->moreOutputs.push_back(to.lookup(n));
  return c;
}
