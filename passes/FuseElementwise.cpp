//===- FuseElementwise.cpp - Elementwise ops into fused kernels -----------===//
//
// Groups chains of elementwise ops, with the scalar broadcasts and reshapes
// they read through, into `fused {kind = "elementwise"}` nodes
// whose bodies are those ops: the compiled step then computes each group in
// one loop and never writes the values between its ops to memory.
//  1. Walk nodes backwards. An elementwise op (one with a scalar function)
//     not yet in a group starts one.
//  2. Grow the group through operands: a fusible producer joins when its
//     only user (one node, which may read it twice) is in the group and it
//     is not a root (its value must exist). Constants always join (they are
//     copied into each body). So a body is a tree over its args and
//     constants: each of its values is computed once per element, and a
//     group stops at kMaxMembers ops, which bounds a kernel's size.
//  3. Merge groups whose values must exist: a group whose root is read at
//     the same element by a later group of the same shape (Adam's new
//     moments, read by the parameter's update, and each an update of its
//     own) joins it, and the merged kernel writes that value as a further
//     result, if everything else that reads it comes after the later
//     group. So one loop reads the gradient, state and parameter once and
//     writes every new value.
//  4. A group of at least two computing ops becomes a fused node at its
//     root's place, with one operand per value it reads from outside and a
//     `result {index}` node after it for each further value read outside;
//     the uses move to them, and DCE drops what the group replaced.
//
//===----------------------------------------------------------------------===//
#include "ir/IndexMap.h"
#include "ir/OpRules.h"
#include "passes/Passes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

using namespace kiln;

namespace {

/// The most ops one fused kernel holds; a longer chain becomes several.
constexpr size_t kMaxMembers = 128;

/// The shortest last axis a kernel reads through a row-wise index map: its
/// loop runs over rows, with a division per row, not per element. Shorter
/// rows (an NCHW image's 28 or 14) leave the inner loop too short to
/// vectorize: the CNN's step measured 14% slower with rows of 8 or more.
constexpr int64_t kMinRow = 64;

/// Whether a kernel reads through o cheaply: a reshape, a broadcast of one
/// element, or a map that leaves the last axis contiguous or broadcast (a
/// bias's row broadcast, a slice of rows) over rows of at least kMinRow, which
/// the kernel reads with index arithmetic once per row. Other maps (a
/// transpose, a broadcast along rows) cost a division per axis and a gather per
/// element, which measured slower than materialising them (the CNN's
/// step: 1.7x), so those stay kernels of their own.
bool cheapRead(const Node &o) {
  if (o.op == Op::Reshape)
    return true;
  if (o.op == Op::Broadcast && *numElements(o.operands[0]->type.shape) == 1)
    return true;
  const Shape &shape = o.type.shape;
  if (shape.size() < 2 || shape.back() < kMinRow)
    return false;
  auto map = stridedMapOf(o);
  if (!map)
    return false;
  int64_t inner = map->strides.back();
  return inner == 0 || inner == 1;
}

/// An op that computes (not only moves or names) values.
bool computes(Op op) { return isScalarOp(op) && op != Op::StopGradient; }

/// The body of a group: args for the outside values, then clones of the
/// members in graph order, returning the root and then `more`.
std::unique_ptr<Graph> buildBody(const Graph &g,
                                 llvm::ArrayRef<const Node *> members,
                                 const Node *root,
                                 llvm::ArrayRef<const Node *> more,
                                 llvm::ArrayRef<Node *> inputs) {
  auto body = std::make_unique<Graph>();
  body->name = g.name;
  llvm::DenseMap<const Node *, Node *> clone;
  for (size_t i = 0; i < inputs.size(); ++i)
    clone[inputs[i]] = cantFail(
        body->add(Op::Arg, {}, {{"index", int64_t(i)}}, {}, inputs[i]->type));
  for (const Node *m : members) {
    llvm::SmallVector<Node *, 4> ops;
    for (const Node *o : m->operands)
      ops.push_back(clone.lookup(o));
    bool leaf = m->info().flags & Leaf;
    clone[m] = cantFail(
        body->add(m->op, ops, m->attrs, m->loc,
                  leaf ? std::optional<TensorType>(m->type) : std::nullopt));
  }
  body->output = clone.lookup(root);
  for (const Node *m : more)
    body->moreOutputs.push_back(clone.lookup(m));
  return body;
}

} // namespace

bool kiln::runFuseElementwise(Graph &g) {
  const size_t N = g.nodes.size();
  llvm::DenseMap<const Node *, size_t> index;
  llvm::DenseMap<const Node *, llvm::SmallVector<const Node *, 2>> users;
  for (size_t i = 0; i < N; ++i) {
    index[g.nodes[i].get()] = i;
    for (const Node *o : g.nodes[i]->operands)
      users[o].push_back(g.nodes[i].get());
  }
  llvm::DenseSet<const Node *> roots;
  for (const Node *r : g.rootValues())
    roots.insert(r);

  // 1-2. Groups, by root.
  std::vector<int> groupOf(N, -1);
  struct Group {
    const Node *root;
    llvm::SmallVector<const Node *, 8> members; // any order for now
    /// Roots of merged groups, in the order they merged.
    llvm::SmallVector<const Node *, 2> more;
    bool merged = false; ///< into another group
  };
  std::vector<Group> groups;
  for (size_t i = N; i-- > 0;) {
    const Node *n = g.nodes[i].get();
    if (groupOf[i] >= 0 || !computes(n->op) || n->type.dtype != DType::F32)
      continue;
    int id = groups.size();
    groups.push_back({n, {n}, {}});
    groupOf[i] = id;
    llvm::SmallVector<const Node *, 8> work{n};
    while (!work.empty()) {
      const Node *m = work.pop_back_val();
      for (const Node *o : m->operands) {
        size_t oi = index.lookup(o);
        if (groupOf[oi] == id || !fusesElementwise(o->op) || o->op == Op::Arg ||
            o->type.dtype != DType::F32)
          continue;
        bool moves = o->op == Op::Broadcast || o->op == Op::Transpose ||
                     o->op == Op::Slice || o->op == Op::Reshape;
        if (moves && !cheapRead(*o))
          continue;
        if (groups[id].members.size() >= kMaxMembers)
          break;
        bool joins = o->op == Op::Constant ||
                     (groupOf[oi] < 0 && !roots.contains(o) &&
                      llvm::all_of(users.lookup(o),
                                   [&](const Node *u) { return u == m; }));
        if (!joins)
          continue;
        if (o->op != Op::Constant)
          groupOf[oi] = id;
        groups[id].members.push_back(o);
        work.push_back(o);
      }
    }
  }

  // 3. Merges, into the later group (groups were made last root first).
  auto isRootOf = [&](const Node *o) -> int {
    int id = groupOf[index.lookup(o)];
    return id >= 0 && !groups[id].merged && groups[id].root == o ? id : -1;
  };
  for (int id = int(groups.size()); id-- > 0;) {
    Group &G = groups[id];
    size_t at = index.lookup(G.root);
    for (bool grew = true; grew;) {
      grew = false;
      for (size_t k = 0; k < G.members.size() && !grew; ++k) {
        for (const Node *o : G.members[k]->operands) {
          int pid = isRootOf(o);
          if (pid < 0 || pid == id || o->type.shape != G.root->type.shape)
            continue;
          Group &P = groups[pid];
          if (G.members.size() + P.members.size() > kMaxMembers)
            continue;
          // Read at the same element by G, and by nothing outside G before
          // G's root, where the merged kernel runs.
          auto readsHere = [&](const Node *v) {
            for (const Node *u : users.lookup(v)) {
              int ug = groupOf[index.lookup(u)];
              if (ug == pid)
                continue; // checked when it merged into P
              if (ug == id ? !isScalarOp(u->op) : index.lookup(u) < at)
                return false;
            }
            return true;
          };
          if (!readsHere(P.root) || !llvm::all_of(P.more, readsHere))
            continue;
          for (const Node *m : P.members)
            if (m->op != Op::Constant)
              groupOf[index.lookup(m)] = id;
          G.members.append(P.members.begin(), P.members.end());
          G.more.push_back(P.root);
          G.more.append(P.more.begin(), P.more.end());
          P.merged = true;
          grew = true;
          break;
        }
      }
    }
  }

  // 4. Fused nodes for groups of two or more computing ops, each followed
  // by the results read outside it.
  llvm::DenseMap<const Node *, std::vector<std::unique_ptr<Node>>>
      fusedAt; // by root
  llvm::DenseMap<Node *, Node *> replaced;
  for (Group &grp : groups) {
    if (grp.merged)
      continue;
    llvm::sort(grp.members, [&](const Node *a, const Node *b) {
      return index.lookup(a) < index.lookup(b);
    });
    grp.members.erase(std::unique(grp.members.begin(), grp.members.end()),
                      grp.members.end());
    if (llvm::count_if(grp.members,
                       [](const Node *m) { return computes(m->op); }) < 2)
      continue;
    llvm::DenseSet<const Node *> inGroup(grp.members.begin(),
                                         grp.members.end());
    // The values read from outside, in graph order: the operands.
    llvm::SetVector<Node *> reads;
    for (const Node *m : grp.members)
      for (Node *o : m->operands)
        if (!inGroup.contains(o))
          reads.insert(o);
    llvm::SmallVector<Node *, 4> inputs(reads.begin(), reads.end());
    llvm::sort(inputs, [&](const Node *a, const Node *b) {
      return index.lookup(a) < index.lookup(b);
    });
    // Further results: merged roots that something outside still reads.
    llvm::SmallVector<const Node *, 2> more;
    for (const Node *m : grp.more)
      if (roots.contains(m) ||
          llvm::any_of(users.lookup(m),
                       [&](const Node *u) { return !inGroup.contains(u); }))
        more.push_back(m);
    auto body = buildBody(g, grp.members, grp.root, more, inputs);
    auto &placed = fusedAt[grp.root];
    Node *fused = cantFail(g.add(Op::Fused, inputs,
                                 {{"kind", std::string("elementwise")}},
                                 grp.root->loc, std::nullopt, std::move(body)));
    placed.push_back(std::move(g.nodes.back()));
    g.nodes.pop_back();
    replaced[const_cast<Node *>(grp.root)] = fused;
    for (size_t k = 0; k < more.size(); ++k) {
      Node *r = cantFail(g.add(Op::Result, {fused}, {{"index", int64_t(k + 1)}},
                               more[k]->loc));
      placed.push_back(std::move(g.nodes.back()));
      g.nodes.pop_back();
      replaced[const_cast<Node *>(more[k])] = r;
    }
  }
  if (fusedAt.empty())
    return false;
  // Each fused node, with its results, takes its root's place in the order
  // (all it reads comes before the root) and the uses of what it computes.
  std::vector<std::unique_ptr<Node>> order;
  for (auto &np : g.nodes) {
    if (auto it = fusedAt.find(np.get()); it != fusedAt.end())
      for (auto &f : it->second)
        order.push_back(std::move(f));
    order.push_back(std::move(np));
  }
  g.nodes = std::move(order);
  for (auto &np : g.nodes)
    for (Node *&o : np->operands)
      if (Node *f = replaced.lookup(o))
        o = f;
  for (Node **r : g.roots())
    if (Node *f = replaced.lookup(*r))
      *r = f;
  runDCE(g);
  return true;
}
