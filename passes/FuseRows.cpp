//===- FuseRows.cpp - Softmax, cross-entropy and their gradient by rows ---===//
//
// Makes one `fused {kind = "rows"}` kernel of the row ops that read one
// [R, C] value X (softmax and log_softmax along rows, cross_entropy) and
// the elementwise work on their results: cross-entropy's loss, its
// gradient (softmax(X) - one_hot(y)) / R and the one_hots it reads are one
// pass over each row of X, so neither the probabilities nor the one-hot
// targets are written to memory.
//  1. For each X, the row ops reading it (f32, rank 2) and the one_hots of
//     the labels its cross_entropys read.
//  2. Elementwise work of X's shape joins, in graph order, if it reads a
//     member and reads every member at the element it computes.
//  3. A one_hot joins only if members read all its uses.
//  4. The kernel goes at its last member's place; every other reader of a
//     member must come after it, else nothing fuses. Members read outside
//     (or roots) are its results.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include "passes/KernelBody.h"
#include "passes/Passes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

using namespace kiln;

namespace {

bool isRowStat(const Node &n) {
  bool op =
      n.op == Op::CrossEntropy || n.op == Op::Softmax || n.op == Op::LogSoftmax;
  if (!op || n.operands[0]->type.dtype != DType::F32 ||
      n.operands[0]->type.rank() != 2)
    return false;
  if (n.op == Op::CrossEntropy)
    return true;
  return (n.op == Op::Softmax || n.op == Op::LogSoftmax) &&
         llvm::cantFail(normaliseAxis(n, n.intAttr("axis"), 2)) == 1;
}

} // namespace

bool kiln::runFuseRows(Graph &g) {
  bool changed = false;
  for (bool again = true; again;) {
    again = false;
    const size_t N = g.nodes.size();
    GraphUses uses(g);
    auto &index = uses.index;
    auto &users = uses.users;
    auto isRoot = [&](const Node *n) { return uses.rootUses.lookup(n) > 0; };
    llvm::DenseSet<const Node *> tried;
    for (size_t si = 0; si < N && !again; ++si) {
      Node &seed = *g.nodes[si];
      if (!isRowStat(seed) || tried.contains(seed.operands[0]))
        continue;
      Node *x = seed.operands[0];
      tried.insert(x);
      const Shape &domain = x->type.shape;
      // 1. Row ops on x, and one_hots of their labels.
      std::vector<Node *> members;
      llvm::DenseSet<const Node *> in;
      for (Node *u : users.lookup(x))
        if (isRowStat(*u) && u->operands[0] == x) {
          members.push_back(u);
          in.insert(u);
        }
      llvm::SmallVector<Node *, 2> oneHots;
      for (Node *m : members)
        if (m->op == Op::CrossEntropy)
          for (Node *u : users.lookup(m->operands[1]))
            if (u->op == Op::OneHot && u->type.shape == domain &&
                !in.contains(u)) {
              oneHots.push_back(u);
              in.insert(u);
            }
      // 2. Elementwise work on them, in graph order.
      size_t first = index.lookup(members[0]);
      for (size_t i = first; i < N; ++i) {
        Node *u = g.nodes[i].get();
        if (in.contains(u) || !isElementwiseWork(*u) || u->type.shape != domain)
          continue;
        bool readsMember = false, atElement = true;
        for (size_t k = 0; k < u->operands.size(); ++k)
          if (in.contains(u->operands[k])) {
            readsMember = true;
            atElement &= readsAtElement(*u, k);
          }
        if (readsMember && atElement) {
          members.push_back(u);
          in.insert(u);
        }
      }
      // 3. One_hots whose every use joined.
      for (Node *h : oneHots) {
        bool all = !isRoot(h) &&
                   llvm::all_of(users.lookup(h),
                                [&](const Node *u) { return in.contains(u); });
        if (all)
          members.push_back(h);
        else
          in.erase(h);
      }
      llvm::sort(members, [&](const Node *a, const Node *b) {
        return index.lookup(a) < index.lookup(b);
      });
      if (members.size() < 2)
        continue;
      // 4. Results, and where the kernel goes.
      size_t last = index.lookup(members.back());
      llvm::SmallVector<Node *, 4> results;
      bool ok = true;
      for (Node *m : members) {
        bool outside = isRoot(m);
        for (const Node *u : users.lookup(m))
          if (!in.contains(u)) {
            outside = true;
            ok &= index.lookup(u) > last;
          }
        if (outside)
          results.push_back(m);
      }
      if (!ok || results.empty())
        continue;
      // The body: members in order, on args for what they read outside.
      BodyBuilder bb(g.name);
      llvm::DenseMap<const Node *, Node *> clone;
      bool built = true;
      for (Node *m : members) {
        llvm::SmallVector<Node *, 4> ops;
        for (Node *o : m->operands)
          ops.push_back(in.contains(o) ? clone.lookup(o) : bb.arg(o));
        if (m->op == Op::Fused || isScalarOp(m->op)) {
          auto r = bb.inlineWork(*m, ops);
          if (!r || r->size() != 1) {
            if (!r)
              llvm::consumeError(r.takeError());
            built = false;
            break;
          }
          clone[m] = (*r)[0];
        } else {
          auto r = bb.add(m->op, ops, m->attrs, m->loc);
          if (!r) {
            llvm::consumeError(r.takeError());
            built = false;
            break;
          }
          clone[m] = *r;
        }
      }
      if (!built)
        continue;
      llvm::SmallVector<Node *, 4> outs;
      for (Node *r : results)
        outs.push_back(clone.lookup(r));
      auto made = bb.finish(g, "rows", outs, results[0]->loc);
      if (!made) {
        // A body the rows kind does not allow: the ops stay as they are.
        llvm::consumeError(made.takeError());
        continue;
      }
      std::vector<std::unique_ptr<Node>> placed;
      placed.push_back(std::move(*made));
      Node *f = placed[0].get();
      llvm::DenseMap<Node *, Node *> replaced{{results[0], f}};
      for (size_t k = 1; k < results.size(); ++k) {
        Node *r = cantFail(
            g.add(Op::Result, {f}, {{"index", int64_t(k)}}, results[k]->loc));
        placed.push_back(std::move(g.nodes.back()));
        g.nodes.pop_back();
        replaced[results[k]] = r;
      }
      // The kernel and its results at the last member's place.
      std::vector<std::unique_ptr<Node>> order;
      for (auto &np : g.nodes) {
        if (np.get() == members.back())
          for (auto &p : placed)
            order.push_back(std::move(p));
        order.push_back(std::move(np));
      }
      g.nodes = std::move(order);
      for (auto &np : g.nodes)
        for (Node *&o : np->operands)
          if (Node *r = replaced.lookup(o); r && np.get() != r)
            o = r;
      for (Node **r : g.roots())
        if (Node *n = replaced.lookup(*r))
          *r = n;
      runDCE(g);
      changed = again = true;
    }
  }
  return changed;
}
