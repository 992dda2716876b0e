//===- PlanMemory.cpp - Alias classes, live ranges and offsets ------------===//
//
// Plans the memory of a compiled step in three steps:
//   1. Give each node its alias class (PlanMemory.h): leaves live in the
//      caller's buffers; reshapes and stop_gradients are views of their
//      operand; a last-two-axes transpose read only by matmuls and a float
//      constant (or one-element broadcast) read only by elementwise ops need
//      no buffer; everything else gets a workspace slot.
//   2. Find each slot's live range, from the node that writes it to its
//      last reader (through views); the roots' slots live to the end, and
//      the end-of-step copies into updated leaves are planned here.
//   3. Place workspace slots first fit in the order they are written: a
//      region whose last reader is node i is free from node i + 1 on, so no
//      node writes over its own operands.
//
//===----------------------------------------------------------------------===//
#include "passes/PlanMemory.h"
#include "ir/OpRules.h"
#include "passes/KernelBody.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/STLExtras.h"
#include <cassert>
#include <map>

using namespace kiln;

namespace {

/// True if n swaps the last two axes and leaves the others.
bool isLast2Transpose(const Node &n) {
  if (n.op != Op::Transpose)
    return false;
  auto perm = n.intsAttr("perm");
  int64_t r = perm.size();
  if (r < 2)
    return false;
  for (int64_t i = 0; i + 2 < r; ++i)
    if (perm[i] != i)
      return false;
  return perm[r - 2] == r - 1 && perm[r - 1] == r - 2;
}

/// True if fused node f is a gemm kernel whose body reads operand k only
/// as an operand of its matmul.
bool readsAsProductOperand(const Node &f, size_t k) {
  if (f.op != Op::Fused || f.stringAttr("kind") != "gemm")
    return false;
  const Node *arg = bodyArg(*f.body, k);
  for (auto &np : f.body->nodes)
    if (llvm::is_contained(np->operands, arg) && np->op != Op::MatMul)
      return false;
  return true;
}

/// The result number of v: that of a `result` node, else 0.
int64_t resultNumber(const Node &v) {
  return v.op == Op::Result ? v.intAttr("index") : 0;
}

/// The number of the result of a gemm, conv or reduce kernel f that is its
/// product (the matmul, conv2d or reduction), or -1 (also for other
/// kernels).
int64_t productResult(const Node &f) {
  if (f.stringAttr("kind") == "elementwise" || f.stringAttr("kind") == "rows")
    return -1;
  auto results = bodyResults(*f.body);
  for (size_t r = 0; r < results.size(); ++r)
    if (results[r]->op == Op::MatMul || results[r]->op == Op::Conv2d ||
        results[r]->info().flags & Reduction)
      return r;
  return -1;
}

/// The matmul, conv2d or reduction in the body of gemm, conv or reduce
/// kernel f, or null (also for other kernels).
const Node *productNode(const Node &f) {
  if (f.stringAttr("kind") == "elementwise" || f.stringAttr("kind") == "rows")
    return nullptr;
  for (auto &np : f.body->nodes)
    if (np->op == Op::MatMul || np->op == Op::Conv2d ||
        np->info().flags & Reduction)
      return np.get();
  return nullptr;
}

/// The K of a matmul's or conv2d's product: the length of each sum.
int64_t productDepth(const Node &p) {
  if (p.op == Op::Conv2d) {
    const Shape &w = p.operands[1]->type.shape;
    return w[1] * w[2] * w[3];
  }
  return p.operands[0]->type.shape.back();
}

/// The alias class n would have if all its users allowed it.
Storage preferredStorage(const Node &n) {
  if (n.op == Op::Result)
    return Storage::Result;
  if (n.info().flags & Leaf && n.op != Op::Constant)
    return Storage::Leaf;
  if (n.op == Op::Reshape || n.op == Op::StopGradient)
    return Storage::View;
  if (isLast2Transpose(n))
    return Storage::Transposed;
  if (n.op == Op::Constant && n.type.dtype == DType::F32)
    return Storage::Immediate;
  if (n.op == Op::Broadcast && *numElements(n.operands[0]->type.shape) == 1 &&
      n.operands[0]->op != Op::Constant)
    return Storage::Splat;
  return Storage::Buffer;
}

/// Whether a user of a node of class s, which reads it as operand k, lets
/// it keep that class.
bool userAllows(Storage s, const Node &user, size_t k) {
  switch (s) {
  case Storage::Transposed:
    return user.op == Op::MatMul || readsAsProductOperand(user, k);
  case Storage::Immediate:
  case Storage::Splat:
    // An elementwise kernel reads them; a view has no kernel.
    return user.info().flags & Elementwise &&
           preferredStorage(user) != Storage::View;
  default:
    return true;
  }
}

/// Node v's leaf if v is written in place: for each update `leaf <- v`
/// where v is a result of a fused kernel F (F itself, or a `result` of F)
/// that reads the leaf as an operand only at the element it computes, and
/// nothing reads the leaf's old value at or after F (nor after the step: no
/// root is the leaf). Per node: the leaf's index, or -1.
std::vector<int64_t>
inPlaceLeaves(const Graph &g,
              const llvm::DenseMap<const Node *, int64_t> &index,
              llvm::ArrayRef<Storage> storage) {
  const int64_t N = g.nodes.size();
  std::vector<int64_t> out(N, -1);
  // The last node reading each leaf's buffer (through views, transposed
  // and splat reads), and whether F itself does other than as an operand.
  std::vector<int64_t> lastReader(N, -1);
  std::vector<llvm::SmallVector<int64_t, 2>> readers(N);
  std::vector<int64_t> bufferOf(N, -1); // the leaf whose buffer node i is
  for (int64_t i = 0; i < N; ++i) {
    const Node &n = *g.nodes[i];
    if (storage[i] == Storage::Leaf)
      bufferOf[i] = i;
    bool alias = storage[i] == Storage::View ||
                 storage[i] == Storage::Transposed ||
                 storage[i] == Storage::Splat;
    for (const Node *o : n.operands)
      if (int64_t l = bufferOf[index.lookup(o)]; l >= 0) {
        if (alias)
          bufferOf[i] = l;
        else
          readers[l].push_back(i);
      }
  }
  llvm::DenseSet<int64_t> readAtEnd;
  for (const Node *r : g.rootValues())
    if (int64_t l = bufferOf[index.lookup(r)]; l >= 0)
      readAtEnd.insert(l);
  LeafIndex leaves(g);
  for (const StateUpdate &u : g.updates) {
    const Node *leaf = leaves.find(Op::Param, u.name);
    if (!leaf)
      leaf = leaves.find(Op::State, u.name);
    int64_t l = index.lookup(leaf), v = index.lookup(u.value);
    if (storage[l] != Storage::Leaf || readAtEnd.contains(l))
      continue;
    const Node *f = u.value;
    if (f->op == Op::Result)
      f = f->operands[0];
    else if (storage[v] != Storage::Buffer)
      continue;
    if (f->op != Op::Fused || f->stringAttr("kind") == "rows" ||
        productResult(*f) == resultNumber(*u.value))
      continue;
    int64_t fi = index.lookup(f);
    bool ok = true;
    for (int64_t r : readers[l]) {
      if (r < fi)
        continue;
      if (r > fi) {
        ok = false;
        break;
      }
      for (size_t k = 0; k < f->operands.size(); ++k)
        if (f->operands[k] == leaf && !readsAtElement(*f, k))
          ok = false;
        else if (f->operands[k] != leaf &&
                 bufferOf[index.lookup(f->operands[k])] == l)
          ok = false; // a view of the leaf, read in some other order
    }
    if (ok)
      out[v] = l;
  }
  return out;
}

} // namespace

int64_t BufferPlan::unsharedBytes() const {
  int64_t sum = 0;
  for (int64_t b : bytes)
    sum += b;
  return sum;
}

BufferPlan kiln::planMemory(const Graph &g) {
  const int64_t N = g.nodes.size();
  llvm::DenseMap<const Node *, int64_t> index;
  for (int64_t i = 0; i < N; ++i)
    index[g.nodes[i].get()] = i;

  // 1. Alias classes. A root is always materialised.
  BufferPlan plan;
  plan.storage.resize(N);
  for (int64_t i = 0; i < N; ++i)
    plan.storage[i] = preferredStorage(*g.nodes[i]);
  for (auto &n : g.nodes)
    for (size_t k = 0; k < n->operands.size(); ++k)
      if (Node *o = n->operands[k]; !userAllows(plan.storage[index[o]], *n, k))
        plan.storage[index[o]] = Storage::Buffer;
  for (const Node *root : g.rootValues()) {
    Storage &s = plan.storage[index[root]];
    if (s == Storage::Transposed || s == Storage::Immediate ||
        s == Storage::Splat)
      s = Storage::Buffer;
  }

  // In-place updates: the leaf each new value may be written over.
  std::vector<int64_t> inPlaceOf = inPlaceLeaves(g, index, plan.storage);
  plan.inPlace.assign(N, false);
  for (int64_t i = 0; i < N; ++i)
    plan.inPlace[i] = inPlaceOf[i] >= 0;

  plan.slotOf.assign(N, -1);
  plan.productOf.assign(N, -1);
  plan.colsOf.assign(N, -1);
  // Per slot: the first and last node (graph order) during which it holds
  // a value; the roots' slots end at N, after the last node.
  std::vector<std::pair<int64_t, int64_t>> live;
  auto newSlot = [&](int64_t leaf, int64_t bytes, int64_t node) {
    plan.leafOf.push_back(leaf);
    plan.offset.push_back(-1);
    plan.bytes.push_back(leaf >= 0 ? 0 : (bytes + 63) / 64 * 64);
    live.push_back({node, node});
    return int64_t(plan.leafOf.size() - 1);
  };
  // A fused node's `result` nodes, by index (a second one of an index
  // shares the first's slot). Their slots are made when the fused node is
  // visited, since its kernel writes them: regions are placed in the order
  // they start.
  llvm::DenseMap<const Node *, std::map<int64_t, std::vector<int64_t>>>
      resultNodes;
  for (int64_t i = 0; i < N; ++i)
    if (g.nodes[i]->op == Op::Result)
      resultNodes[g.nodes[i]->operands[0]][g.nodes[i]->intAttr("index")]
          .push_back(i);
  for (int64_t i = 0; i < N; ++i) {
    const Node &n = *g.nodes[i];
    int64_t bytes = *numElements(n.type.shape) * dtypeSize(n.type.dtype);
    switch (plan.storage[i]) {
    case Storage::Leaf:
      plan.slotOf[i] = newSlot(i, 0, i);
      break;
    case Storage::View:
      plan.slotOf[i] = plan.slotOf[index[n.operands[0]]];
      break;
    case Storage::Buffer:
      plan.slotOf[i] =
          inPlaceOf[i] >= 0 ? plan.slotOf[inPlaceOf[i]] : newSlot(-1, bytes, i);
      break;
    default:
      continue; // results get their slots with their fused node
    }
    // A kernel's product (a GEMM's C, a reduction's accumulator) is in its
    // result's slot if it is a result. Else a reduction accumulates in
    // scratch. A GEMM whose K fits one K block keeps each block of C in a
    // tile of its thread's; with more K, it writes C over its first result
    // not written in place (the epilogue reads each element before it
    // stores that result there), or into a panel of its thread's.
    const Node *productOp = n.op == Op::Fused ? productNode(n) : nullptr;
    int64_t product = productOp ? productResult(n) : -1;
    bool overResult = productOp && product < 0 &&
                      !(productOp->info().flags & Reduction) &&
                      productDepth(*productOp) > kGemmKBlock;
    auto claim = [&](int64_t k, int64_t slot, bool inPlace) {
      if (k == product || (overResult && !inPlace && plan.productOf[i] < 0)) {
        // The verifier gives every result the product's f32 shape.
        assert(bodyResults(*n.body)[k]->type == productOp->type);
        plan.productOf[i] = slot;
      }
    };
    if (productOp && plan.slotOf[i] >= 0)
      claim(0, plan.slotOf[i], inPlaceOf[i] >= 0);
    if (n.op == Op::Fused)
      for (auto &[k, nodes] : resultNodes.lookup(&n)) {
        const Node &r = *g.nodes[nodes[0]];
        bool inPlace = inPlaceOf[nodes[0]] >= 0;
        int64_t slot =
            inPlace
                ? plan.slotOf[inPlaceOf[nodes[0]]]
                : newSlot(-1,
                          *numElements(r.type.shape) * dtypeSize(r.type.dtype),
                          i);
        for (int64_t ri : nodes)
          plan.slotOf[ri] = slot;
        claim(k, slot, inPlace);
      }
    plan.kernels += plan.storage[i] == Storage::Buffer;
    bool conv = n.op == Op::Conv2d ||
                (n.op == Op::Fused && n.stringAttr("kind") == "conv");
    if (conv) {
      ++plan.kernels;
      const Node &c = n.op == Op::Conv2d ? n : *productOp;
      const Shape &w = c.operands[1]->type.shape, &y = c.type.shape;
      int64_t cols = y[0] * w[1] * w[2] * w[3] * y[2] * y[3];
      plan.colsOf[i] = newSlot(-1, cols * 4, i);
    }
    if (productOp && productOp->info().flags & Reduction &&
        plan.productOf[i] < 0)
      plan.productOf[i] = newSlot(-1, bytes, i);
  }

  // 2. Live ranges. A transposed or splat read reads its operand's slot.
  auto slotRead = [&](const Node *o) {
    while (plan.slotOf[index[o]] < 0 &&
           plan.storage[index[o]] != Storage::Immediate)
      o = o->operands[0];
    return plan.slotOf[index[o]];
  };
  for (int64_t i = 0; i < N; ++i)
    for (const Node *o : g.nodes[i]->operands)
      if (int64_t s = slotRead(o); s >= 0)
        live[s].second = std::max(live[s].second, i);
  for (const Node *root : g.rootValues())
    live[slotRead(root)].second = N;

  // Updates: a value held in an updated leaf's buffer is staged first.
  llvm::DenseSet<int64_t> updatedSlots;
  std::vector<std::pair<int64_t, int64_t>> updates; // value slot, leaf slot
  LeafIndex leaves(g);
  for (const StateUpdate &u : g.updates) {
    const Node *leaf = leaves.find(Op::Param, u.name);
    if (!leaf)
      leaf = leaves.find(Op::State, u.name);
    int64_t to = plan.slotOf[index[leaf]];
    updates.push_back({slotRead(u.value), to});
    updatedSlots.insert(to);
  }
  std::vector<BufferPlan::Copy> finals;
  for (auto [from, to] : updates) {
    const Node &leaf = *g.nodes[plan.leafOf[to]];
    int64_t bytes = *numElements(leaf.type.shape) * dtypeSize(leaf.type.dtype);
    if (from == to) {
      plan.inPlaceBytes += bytes;
      continue;
    }
    if (plan.leafOf[from] >= 0 && updatedSlots.contains(from)) {
      int64_t staged = newSlot(-1, bytes, N);
      live[staged].second = N;
      plan.endCopies.push_back({from, staged, bytes});
      from = staged;
    }
    finals.push_back({from, to, bytes});
  }
  plan.endCopies.insert(plan.endCopies.end(), finals.begin(), finals.end());

  // 3. First fit.
  struct Region {
    int64_t begin, end, last;
  };
  std::vector<Region> taken; // sorted by begin
  for (size_t sl = 0; sl < plan.numSlots(); ++sl) {
    if (plan.leafOf[sl] >= 0)
      continue;
    auto [first, last] = live[sl];
    llvm::erase_if(
        taken, [&, first = first](const Region &r) { return r.last < first; });
    int64_t at = 0;
    auto pos = taken.begin();
    for (; pos != taken.end() && pos->begin < at + plan.bytes[sl]; ++pos)
      at = std::max(at, pos->end);
    taken.insert(pos, {at, at + plan.bytes[sl], last});
    plan.offset[sl] = at;
    plan.workspaceBytes = std::max(plan.workspaceBytes, at + plan.bytes[sl]);
  }
  return plan;
}
