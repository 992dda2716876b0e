//===- FuseGemmEpilogue.cpp - Elementwise consumers into their GEMM -------===//
//
// Moves the elementwise work that reads a matrix product into that
// product's GEMM, as an epilogue the runtime GEMM runs on each block of C
// while the block is in cache: the bias and activation after a forward
// product, the activation's mask after a backward one, an optimizer update
// after a weight gradient's. The result is a `fused {kind = "gemm"}` node.
//  1. A consumer is an elementwise fused node, or a single elementwise op,
//     whose value is rank 2 and f32.
//  2. It takes the first rank-2 matmul of its own shape among its operands
//     that it reads only at the element it computes (as an operand of
//     scalar ops), provided everything else that reads the product comes
//     after the consumer. If something does, the product is also a result.
//  3. It takes the broadcasts of rank-1 or rank-2 values that only it reads
//     (a bias's row broadcast): the epilogue knows each element's row and
//     column, so reading them costs no division.
// The micro-kernels are not specialised: one epilogue function per kernel
// is all that is generated.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include "passes/Passes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SetVector.h"

using namespace kiln;

namespace {

/// The arg nodes of body b, by operand index.
llvm::SmallVector<const Node *, 8> argsOf(const Graph &b, size_t count) {
  llvm::SmallVector<const Node *, 8> args(count, nullptr);
  for (auto &np : b.nodes)
    if (np->op == Op::Arg)
      args[np->intAttr("index")] = np.get();
  return args;
}

/// True if consumer c reads its operand k only as an operand of scalar ops.
bool readsAtElement(const Node &c, size_t k) {
  if (!c.body)
    return isScalarOp(c.op);
  const Node *arg = argsOf(*c.body, c.operands.size())[k];
  if (c.body->output == arg || llvm::is_contained(c.body->moreOutputs, arg))
    return false;
  for (auto &np : c.body->nodes)
    if (llvm::is_contained(np->operands, arg) && !isScalarOp(np->op))
      return false;
  return true;
}

/// The gemm kernel of consumer c (node index ci) with product mm, taking
/// the broadcasts in `takes` (operand indices of c). Its results are c's,
/// then mm if `exposeProduct`.
llvm::Expected<Node *> buildGemmKernel(Graph &g, Node &c, Node &mm,
                                       llvm::ArrayRef<size_t> takes,
                                       bool exposeProduct) {
  auto body = std::make_unique<Graph>();
  body->name = g.name;
  llvm::SetVector<Node *> operands;
  llvm::DenseMap<Node *, Node *> argOf;
  auto arg = [&](Node *outer) -> Node * {
    if (Node *a = argOf.lookup(outer))
      return a;
    operands.insert(outer);
    Node *a = cantFail(body->add(Op::Arg, {},
                                 {{"index", int64_t(operands.size() - 1)}}, {},
                                 outer->type));
    argOf[outer] = a;
    return a;
  };
  Node *product = cantFail(body->add(
      Op::MatMul, {arg(mm.operands[0]), arg(mm.operands[1])}, {}, mm.loc));
  // What each of c's operands is in the new body.
  llvm::SmallVector<Node *, 8> inner;
  for (size_t k = 0; k < c.operands.size(); ++k) {
    Node *o = c.operands[k];
    if (o == &mm)
      inner.push_back(product);
    else if (llvm::is_contained(takes, k))
      inner.push_back(cantFail(body->add(Op::Broadcast, {arg(o->operands[0])},
                                         o->attrs, o->loc)));
    else
      inner.push_back(arg(o));
  }
  llvm::DenseMap<const Node *, Node *> clone;
  auto copy = [&](const Node &x, llvm::ArrayRef<Node *> ops) {
    bool leaf = x.info().flags & Leaf;
    return body->add(x.op, ops, x.attrs, x.loc,
                     leaf ? std::optional<TensorType>(x.type) : std::nullopt);
  };
  if (c.body) {
    for (auto &np : c.body->nodes) {
      const Node &x = *np;
      if (x.op == Op::Arg) {
        clone[&x] = inner[x.intAttr("index")];
        continue;
      }
      llvm::SmallVector<Node *, 4> ops;
      for (const Node *o : x.operands)
        ops.push_back(clone.lookup(o));
      auto n = copy(x, ops);
      if (!n)
        return n.takeError();
      clone[&x] = *n;
    }
    body->output = clone.lookup(c.body->output);
    for (const Node *m : c.body->moreOutputs)
      body->moreOutputs.push_back(clone.lookup(m));
  } else {
    auto n = copy(c, inner);
    if (!n)
      return n.takeError();
    body->output = *n;
  }
  if (exposeProduct)
    body->moreOutputs.push_back(product);
  llvm::SmallVector<Node *, 8> ops(operands.begin(), operands.end());
  auto fused = g.add(Op::Fused, ops, {{"kind", std::string("gemm")}}, c.loc,
                     std::nullopt, std::move(body));
  if (!fused)
    return fused.takeError();
  Node *f = *fused;
  g.nodes.back().release();
  g.nodes.pop_back();
  return f;
}

} // namespace

bool kiln::runFuseGemmEpilogue(Graph &g) {
  bool changed = false;
  for (bool again = true; again;) {
    again = false;
    const size_t N = g.nodes.size();
    llvm::DenseMap<const Node *, size_t> index;
    llvm::DenseMap<const Node *, llvm::SmallVector<Node *, 2>> users;
    for (size_t i = 0; i < N; ++i) {
      index[g.nodes[i].get()] = i;
      for (Node *o : g.nodes[i]->operands)
        users[o].push_back(g.nodes[i].get());
    }
    llvm::DenseMap<const Node *, int> rootUses;
    for (const Node *r : g.rootValues())
      ++rootUses[r];
    for (size_t ci = 0; ci < N && !again; ++ci) {
      Node &c = *g.nodes[ci];
      bool elementwiseKernel =
          c.op == Op::Fused && c.stringAttr("kind") == "elementwise";
      if (!(elementwiseKernel || isScalarOp(c.op)) || c.type.rank() != 2 ||
          c.type.dtype != DType::F32)
        continue;
      Node *mm = nullptr;
      bool exposeProduct = false;
      for (size_t k = 0; k < c.operands.size() && !mm; ++k) {
        Node *o = c.operands[k];
        if (o->op != Op::MatMul || o->type != c.type ||
            o->operands[0]->type.rank() != 2 ||
            o->operands[1]->type.rank() != 2 ||
            llvm::count(c.operands, o) != 1 || !readsAtElement(c, k))
          continue;
        bool later = true, others = rootUses.lookup(o) > 0;
        for (const Node *u : users.lookup(o)) {
          if (u == &c)
            continue;
          others = true;
          later &= index.lookup(u) > ci;
        }
        if (!later)
          continue;
        mm = o;
        exposeProduct = others;
      }
      if (!mm)
        continue;
      llvm::SmallVector<size_t, 2> takes;
      for (size_t k = 0; k < c.operands.size(); ++k) {
        const Node *o = c.operands[k];
        if (o->op == Op::Broadcast && o->operands[0]->type.rank() <= 2 &&
            users.lookup(o).size() == 1 && !rootUses.lookup(o) &&
            llvm::count(c.operands, o) == 1 && readsAtElement(c, k))
          takes.push_back(k);
      }
      auto built = buildGemmKernel(g, c, *mm, takes, exposeProduct);
      if (!built) {
        // A body the gemm kind does not allow: c stays as it is.
        llvm::consumeError(built.takeError());
        continue;
      }
      Node *f = *built;
      Node *product = nullptr;
      if (exposeProduct)
        product = cantFail(g.add(Op::Result, {f},
                                 {{"index", int64_t(f->body->moreOutputs.size())}},
                                 mm->loc));
      std::unique_ptr<Node> productNode;
      if (product) {
        productNode.reset(g.nodes.back().release());
        g.nodes.pop_back();
      }
      // f takes c's place and uses, its product result mm's.
      std::vector<std::unique_ptr<Node>> order;
      for (auto &np : g.nodes) {
        if (np.get() == &c) {
          order.emplace_back(f);
          if (productNode)
            order.push_back(std::move(productNode));
        }
        order.push_back(std::move(np));
      }
      g.nodes = std::move(order);
      for (auto &np : g.nodes)
        for (Node *&o : np->operands)
          if (o == &c)
            o = f;
          else if (o == mm && product && np.get() != product)
            o = product;
      for (Node **r : g.roots())
        if (*r == &c)
          *r = f;
        else if (*r == mm && product)
          *r = product;
      // The product's operands are f's now; mm and the broadcasts it took
      // are dead.
      runDCE(g);
      changed = again = true;
    }
  }
  return changed;
}
