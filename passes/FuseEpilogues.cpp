//===- FuseEpilogues.cpp - Elementwise work into GEMMs and reductions -----===//
//
// Moves the elementwise work around a matrix product, a convolution or a
// reduction into that op's kernel. A product's consumer becomes its GEMM's
// epilogue, run on each block of C while the block is in cache: the bias and
// activation after a forward product or convolution, the activation's mask
// after a backward product, an optimizer's update after a weight gradient. A
// reduction takes the elementwise op it reduces (its prologue, computed as it
// is summed) and its consumer (an epilogue on each output, such as the update
// of a bias from its gradient's sum). The results are `fused {kind = "gemm"}`,
// `fused {kind = "conv"}` and `fused {kind = "reduce"}` nodes.
//  1. A producer is a rank-2 f32 matmul of rank-2 operands, an f32 conv2d,
//     or a sum, mean or max of f32 values.
//  2. A reduction takes its operand if that is an elementwise kernel (or a
//     single elementwise op) that nothing else reads and that is no root.
//  3. The producer's first user in graph order joins as its epilogue if it
//     is an elementwise kernel or op of the producer's shape that reads it
//     only at the element it computes (as an operand of scalar ops). Other
//     users come later, so they read the producer as a further result.
//  4. The epilogue takes the broadcasts that only it reads, of rank-1 or
//     rank-2 values, or of any for a convolution (a bias's): a GEMM epilogue
//     knows each element's row and column, a convolution's its image and
//     channel per row, so reading a bias costs no division.
// The GEMM micro-kernels are not specialised: one epilogue function per
// kernel is all that is generated.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include "passes/KernelBody.h"
#include "passes/Passes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include <queue>

using namespace kiln;

namespace {

/// The kernel of producer p (with prologue `pro`, if any) and epilogue c (if
/// any), taking the broadcasts among c's operands at `takes`. Its results
/// are c's (or p's), then p's if `exposeProduct`.
llvm::Expected<std::unique_ptr<Node>> buildKernel(Graph &g, Node &p, Node *pro,
                                                  Node *c,
                                                  llvm::ArrayRef<size_t> takes,
                                                  bool exposeProduct) {
  BodyBuilder bb(g.name);
  llvm::SmallVector<Node *, 2> pOps;
  if (pro) {
    llvm::SmallVector<Node *, 4> ins;
    for (Node *o : pro->operands)
      ins.push_back(bb.arg(o));
    auto r = bb.inlineWork(*pro, ins);
    if (!r)
      return r.takeError();
    pOps.push_back((*r)[0]);
  } else {
    for (Node *o : p.operands)
      pOps.push_back(bb.arg(o));
  }
  auto product = bb.add(p.op, pOps, p.attrs, p.loc);
  if (!product)
    return product.takeError();
  llvm::SmallVector<Node *, 4> results{*product};
  if (c) {
    llvm::SmallVector<Node *, 8> ins;
    for (size_t k = 0; k < c->operands.size(); ++k) {
      Node *o = c->operands[k];
      if (o == &p) {
        ins.push_back(*product);
      } else if (llvm::is_contained(takes, k)) {
        auto b =
            bb.add(Op::Broadcast, {bb.arg(o->operands[0])}, o->attrs, o->loc);
        if (!b)
          return b.takeError();
        ins.push_back(*b);
      } else {
        ins.push_back(bb.arg(o));
      }
    }
    auto r = bb.inlineWork(*c, ins);
    if (!r)
      return r.takeError();
    results = *r;
    if (exposeProduct)
      results.push_back(*product);
  }
  llvm::StringRef kind = p.op == Op::MatMul   ? "gemm"
                         : p.op == Op::Conv2d ? "conv"
                                              : "reduce";
  return bb.finish(g, kind, results, c ? c->loc : p.loc);
}

bool isReduction(const Node &n) {
  return n.op == Op::Sum || n.op == Op::Mean || n.op == Op::Max;
}

bool isProducer(const Node &n) {
  if (n.op == Op::MatMul)
    return n.type.rank() == 2 && n.type.dtype == DType::F32 &&
           n.operands[0]->type.rank() == 2 && n.operands[1]->type.rank() == 2;
  return (n.op == Op::Conv2d || isReduction(n)) && n.type.dtype == DType::F32;
}

} // namespace

bool kiln::runFuseEpilogues(Graph &g) {
  // Producers are visited in graph order, as a fixed point would meet them:
  // a fusion changes the readers of the values its nodes read, so it
  // re-queues the producers among those (an earlier one may now have an
  // elementwise first reader). A fused kernel's nodes stay in g.nodes until
  // the end (DCE removes them) and map, in `into`, to the kernel that now
  // reads in their place; readers lists are resolved through it when they
  // are read. Operands are rewritten at once, and the kernels go into the
  // node list at the end, so each fusion costs its own neighbourhood only.
  GraphUses uses(g);
  auto &users = uses.users;
  // A reader that reaches no root keeps nothing apart.
  auto live = liveNodes(g);
  for (auto &entry : users)
    llvm::erase_if(entry.second, [&](Node *u) { return !live.contains(u); });
  auto &rootUses = uses.rootUses;
  // Position keys in the final order: 2i for the node at i, and a kernel
  // takes its replaced node's key, its product result the next.
  llvm::DenseMap<const Node *, size_t> key;
  for (auto &[n, i] : uses.index)
    key[n] = 2 * i;
  llvm::DenseMap<const Node *, Node *> into;
  auto resolve = [&](Node *&u) {
    while (Node *k = into.lookup(u))
      u = k;
  };
  // o's readers in graph order, each once.
  auto readers = [&](const Node *o) {
    auto &us = users[o];
    if (llvm::any_of(us, [&](Node *u) { return into.count(u); })) {
      llvm::for_each(us, resolve);
      llvm::sort(us, [&](Node *a, Node *b) { return key[a] < key[b]; });
      us.erase(llvm::unique(us), us.end());
    }
    return llvm::SmallVector<Node *, 4>(us.begin(), us.end());
  };
  // Stops at the first other reader, so a value many kernels read (a
  // shared bias) costs nothing per fusion.
  auto onlyReader = [&](const Node *o, const Node *u) {
    auto &us = users[o];
    if (us.empty() || rootUses.lookup(o))
      return false;
    for (Node *&r : us) {
      resolve(r);
      if (r != u)
        return false;
    }
    return true;
  };
  // The kernel (and product result) to place before each replaced node,
  // and the roots that move.
  llvm::DenseMap<const Node *,
                 std::pair<std::unique_ptr<Node>, std::unique_ptr<Node>>>
      placed;
  llvm::DenseMap<const Node *, Node *> rootTo;
  using Item = std::pair<size_t, Node *>;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> work;
  llvm::DenseSet<const Node *> queued;
  auto enqueue = [&](Node *n) {
    if (isProducer(*n) && live.contains(n) && !into.count(n) &&
        queued.insert(n).second)
      work.push({key[n], n});
  };
  for (auto &n : g.nodes)
    enqueue(n.get());
  while (!work.empty()) {
    Node &p = *work.top().second;
    work.pop();
    queued.erase(&p);
    // 2. The prologue.
    Node *pro = nullptr;
    if (isReduction(p) && isElementwiseWork(*p.operands[0]) &&
        onlyReader(p.operands[0], &p) &&
        (!p.operands[0]->body || p.operands[0]->body->moreOutputs.empty()))
      pro = p.operands[0];
    // 3. The epilogue: the first user.
    Node *c = nullptr;
    auto us = readers(&p);
    if (!us.empty()) {
      Node *u = us[0];
      size_t k = llvm::find(u->operands, &p) - u->operands.begin();
      if (isElementwiseWork(*u) && u->type == p.type &&
          llvm::count(u->operands, &p) == 1 && readsAtElement(*u, k))
        c = u;
    }
    if (!pro && !c)
      continue;
    bool exposeProduct = c && (us.size() > 1 || rootUses.lookup(&p));
    // 4. Broadcasts only the epilogue reads.
    llvm::SmallVector<size_t, 2> takes;
    for (size_t k = 0; c && k < c->operands.size(); ++k) {
      const Node *o = c->operands[k];
      if (o->op == Op::Broadcast &&
          (p.op == Op::Conv2d || o->operands[0]->type.rank() <= 2) &&
          onlyReader(o, c) && llvm::count(c->operands, o) == 1 &&
          readsAtElement(*c, k))
        takes.push_back(k);
    }
    auto built = buildKernel(g, p, pro, c, takes, exposeProduct);
    if (!built) {
      // A body the kernel kinds do not allow: the ops stay as they are.
      llvm::consumeError(built.takeError());
      continue;
    }
    Node *f = built->get();
    Node *product = nullptr;
    std::unique_ptr<Node> productNode;
    if (exposeProduct) {
      product = cantFail(
          g.add(Op::Result, {f},
                {{"index", int64_t(f->body->moreOutputs.size())}}, p.loc));
      productNode.reset(g.nodes.back().release());
      g.nodes.pop_back();
    }
    // f takes the place and readers of its epilogue (or of the producer),
    // its product result the producer's other readers.
    Node *replaced = c ? c : &p;
    key[f] = key[replaced];
    for (Node *u : readers(replaced))
      std::replace(u->operands.begin(), u->operands.end(), replaced, f);
    rootTo[replaced] = f;
    rootUses[f] = rootUses.lookup(replaced);
    if (product) {
      key[product] = key[replaced] + 1;
      for (Node *u : us)
        if (u != c)
          std::replace(u->operands.begin(), u->operands.end(), &p, product);
      rootTo[&p] = product;
      rootUses[product] = rootUses.lookup(&p);
    }
    // What f took is dead now; whatever read it reads f, and the producers
    // it read have new readers.
    llvm::SmallVector<Node *, 4> took{&p};
    if (c)
      took.push_back(c);
    if (pro)
      took.push_back(pro);
    for (size_t k : takes)
      took.push_back(c->operands[k]);
    for (Node *t : took)
      into[t] = f;
    for (Node *t : took)
      for (Node *o : t->operands)
        enqueue(o);
    placed[replaced] = {std::move(*built), std::move(productNode)};
  }
  if (placed.empty())
    return false;
  std::vector<std::unique_ptr<Node>> order;
  for (auto &np : g.nodes) {
    auto it = placed.find(np.get());
    if (it != placed.end()) {
      order.push_back(std::move(it->second.first));
      if (it->second.second)
        order.push_back(std::move(it->second.second));
    }
    order.push_back(std::move(np));
  }
  g.nodes = std::move(order);
  for (Node **r : g.roots())
    if (Node *to = rootTo.lookup(*r))
      *r = to;
  runDCE(g);
  return true;
}
