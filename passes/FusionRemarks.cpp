//===- FusionRemarks.cpp - Why values stay in memory ----------------------===//
//
// Walks the kernels of a graph in order. For each value a kernel reads that
// another kernel wrote (through views and transposes read in place), it
// states the first rule of the fusion passes that kept them apart:
//  - the consumer reads more than the element it computes (a GEMM's
//    operands, a convolution's windows, pooling, data movement);
//  - the producer is no elementwise work and has no epilogue, or its
//    epilogue is another consumer (a GEMM or a reduction has one);
//  - the value must exist: a root, or read by another kernel before;
//  - the consumer reads it at other elements, or has another shape.
//
//===----------------------------------------------------------------------===//
#include "passes/FusionRemarks.h"
#include "ir/OpRules.h"
#include "passes/KernelBody.h"
#include "passes/PlanMemory.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/Twine.h"

using namespace kiln;

namespace {

std::string where(const Node &n) {
  if (!n.loc.isKnown())
    return "";
  return " (" + n.loc.str() + ")";
}

/// A kernel's name: its op, or "<kind> kernel" for a fused one, and its
/// place.
std::string name(const Node &n) {
  if (n.op == Op::Fused)
    return n.stringAttr("kind") + " kernel" + where(n);
  if (n.op == Op::Result)
    return "result " + std::to_string(n.intAttr("index")) + " of the " +
           name(*n.operands[0]);
  return "'" + n.info().mnemonic.str() + "'" + where(n);
}

bool movesData(Op op) {
  return op == Op::Broadcast || op == Op::Transpose || op == Op::Slice ||
         op == Op::Reshape || op == Op::Concat || op == Op::Pad;
}

class Explainer {
public:
  explicit Explainer(const Graph &g) : g(g), plan(planMemory(g)) {
    for (size_t i = 0; i < g.nodes.size(); ++i)
      index[g.nodes[i].get()] = i;
    for (auto &np : g.nodes) {
      for (const Node *o : np->operands)
        if (const Node *p = producer(o); p && kernel(*np))
          readers[p].push_back(np.get());
      valuesOf[&writer(*np)].push_back(np.get());
    }
    for (const StateUpdate &u : g.updates)
      rootName[u.value] = "the new value of '" + u.name + "'";
    for (const NamedGradient &gr : g.gradients)
      rootName[gr.value] = "the gradient of '" + gr.name + "'";
    if (g.objective)
      rootName[g.objective] = "the objective";
    if (g.output)
      rootName[g.output] = "the output";
  }

  std::vector<FusionRemark> run() {
    std::vector<FusionRemark> out;
    for (auto &np : g.nodes) {
      const Node &c = *np;
      if (!kernel(c))
        continue;
      llvm::DenseSet<const Node *> seen;
      for (size_t k = 0; k < c.operands.size(); ++k) {
        const Node *p = producer(c.operands[k]);
        if (!p || !seen.insert(p).second)
          continue;
        const Node &at = p->loc.isKnown() ? *p : c;
        FusionRemark r{at.loc,
                       "not fused into " + name(c) + ": " + reason(*p, c, k)};
        // Two results of one kernel at one place read by one kernel for
        // the same reason say the same thing once.
        bool repeated = llvm::any_of(out, [&](const FusionRemark &o) {
          return o.text == r.text && o.loc.file == r.loc.file &&
                 o.loc.line == r.loc.line && o.loc.col == r.loc.col;
        });
        if (!repeated)
          out.push_back(std::move(r));
      }
    }
    return out;
  }

private:
  /// True if n is a launch of its own (not a leaf, view or folded value).
  bool kernel(const Node &n) const {
    return plan.materialized(index.lookup(&n));
  }
  /// The value a kernel wrote that reading o reads, or null (a leaf, a
  /// constant): through views and in-place transposes.
  const Node *producer(const Node *o) const {
    while (true) {
      Storage s = plan.storage[index.lookup(o)];
      if (s == Storage::Buffer || s == Storage::Result)
        return o;
      if (s != Storage::View && s != Storage::Transposed)
        return nullptr;
      o = o->operands[0];
    }
  }
  /// The kernel that writes value p.
  const Node &writer(const Node &p) const {
    return p.op == Op::Result ? *p.operands[0] : p;
  }

  std::string reason(const Node &p, const Node &c, size_t k) {
    const Node &w = writer(p);
    // The consumer reads more than the element it computes.
    switch (c.op) {
    case Op::MatMul:
      return "a GEMM reads its operands in packed blocks, so they are "
             "computed before it";
    case Op::Conv2d:
      return "a convolution reads its input through im2col windows and its "
             "weights whole";
    case Op::MaxPool2d:
    case Op::AvgPool2d:
    case Op::MaxPool2dIndex:
      return "pooling reads a window of elements for each it writes";
    default:
      break;
    }
    if (c.op == Op::Fused &&
        (c.stringAttr("kind") == "gemm" || c.stringAttr("kind") == "conv")) {
      for (auto &np : c.body->nodes)
        if (np->op == Op::MatMul || np->op == Op::Conv2d)
          for (const Node *o : np->operands) {
            const Node *a = o->op == Op::Transpose ? o->operands[0] : o;
            if (a->op != Op::Arg || size_t(a->intAttr("index")) != k)
              continue;
            if (np->op == Op::Conv2d)
              return "a convolution reads its input through im2col windows "
                     "and its weights whole";
            return "a GEMM reads its operands in packed blocks, so they "
                   "are computed before it";
          }
    }
    if (c.op != Op::Fused && !isScalarOp(c.op)) {
      if (movesData(c.op))
        return "'" + c.info().mnemonic.str() +
               "' moves elements, so it is a copy kernel of its own (a loop "
               "kernel reads through a reshape, a one-element broadcast, or a "
               "map along rows of 64 or more; other maps cost a division and "
               "a gather per element)";
      if (c.op == Op::Dropout)
        return "'dropout' draws its mask per element and has no scalar "
               "function to fuse";
      return "'" + c.info().mnemonic.str() +
             "' reads elements other than the one it writes, and only "
             "elementwise work fuses";
    }
    // The producer has no epilogue, or it is another consumer.
    bool rowsConsumer = c.op == Op::Fused && c.stringAttr("kind") == "rows";
    if (w.op == Op::MatMul || w.op == Op::Conv2d ||
        w.info().flags & Reduction ||
        (w.op == Op::Fused && w.stringAttr("kind") != "elementwise")) {
      if (rowsConsumer)
        return "a rows kernel reads whole rows of its input, and no "
               "producer's epilogue sees a whole row";
      if (w.op == Op::Fused && w.stringAttr("kind") == "rows")
        return "a rows kernel's results are read from memory by the kernels "
               "after it";
      if (w.type.rank() != 2 && w.op == Op::MatMul)
        return "only rank-2 products have an epilogue, not " + w.type.str();
      auto isProduct = [](const Node &x) {
        return x.op == Op::MatMul || x.op == Op::Conv2d ||
               x.info().flags & Reduction;
      };
      bool product = isProduct(p);
      if (p.op == Op::Result)
        product = isProduct(*w.body->moreOutputs[p.intAttr("index") - 1]);
      if (w.op != Op::Fused) {
        // No epilogue formed: its first reader is no elementwise work at
        // its elements.
        const Node *first = readers[&p].front();
        if (first != &c)
          return "the " + name(w) + " has no epilogue: its first reader, " +
                 name(*first) +
                 ", is no elementwise work at the elements it computes, so "
                 "the others read the product from memory";
        if (c.type.shape != p.type.shape)
          return "an epilogue computes values of its product's shape, " +
                 p.type.str() + ", not " + c.type.str();
        return "an epilogue reads the product only at the element it "
               "computes";
      }
      if (product)
        return "the " + name(w) +
               " has one epilogue, its first consumer; later ones read its "
               "product from memory";
      // An epilogue runs inside its producer's kernel: what else it reads
      // must exist by then.
      for (const Node *o : c.operands) {
        const Node *q = producer(o);
        if (q && index.lookup(&writer(*q)) > index.lookup(&w))
          return "it is computed by the epilogue of the " + name(w) +
                 ", which runs before " + name(writer(*q)) +
                 ", whose value this kernel also reads";
      }
      return "it is computed by the epilogue of the " + name(w) +
             ", and a kernel fuses into at most one producer";
    }
    if (!isElementwiseWork(w) && !movesData(w.op))
      return "'" + w.info().mnemonic.str() +
             "' is a kernel of its own: no rule fuses its consumers into it";
    if (movesData(w.op))
      return "a " + w.info().mnemonic.str() +
             " other than a reshape, a one-element broadcast or a map along "
             "rows of 64 or more is a kernel of its own (read through, it "
             "costs a division per element)";
    // Both are elementwise work.
    if (p.type.shape != c.type.shape && c.op == Op::Fused &&
        c.stringAttr("kind") == "elementwise")
      if (!readsAtElement(c, k))
        return "it is read through an index map (a broadcast, transpose or "
               "slice), at other elements than the consumer computes";
    if (auto it = rootName.find(&p);
        it != rootName.end() && readers[&p].size() == 1)
      return "it is " + it->second + ", and its kernel runs before it is read";
    for (const Node *r : readers[&p])
      if (r != &c && index.lookup(r) < index.lookup(&c))
        return "it is also read by " + name(*r) +
               ", before this kernel, so it must be in memory by then";
    // A kernel's values are computed together: merging this consumer into
    // it would move all of them past their other readers.
    for (const Node *v : valuesOf[&w])
      for (const Node *r : readers[v])
        if (r != &c && index.lookup(r) < index.lookup(&c))
          return "it comes from the " + name(w) + ", whose values " + name(*r) +
                 " reads before this kernel";
    if (p.type.shape != c.type.shape)
      return "it has another shape (" + p.type.str() + ", not " + c.type.str() +
             ")";
    if (!readsAtElement(c, k))
      return "it is read at other elements than the consumer computes";
    return "the merged kernel would exceed the limit of ops per kernel";
  }

  const Graph &g;
  BufferPlan plan;
  llvm::DenseMap<const Node *, size_t> index;
  llvm::DenseMap<const Node *, std::vector<const Node *>> readers;
  /// Per kernel: the values it writes (itself and its results).
  llvm::DenseMap<const Node *, std::vector<const Node *>> valuesOf;
  llvm::DenseMap<const Node *, std::string> rootName;
};

} // namespace

std::vector<FusionRemark> kiln::fusionRemarks(const Graph &g) {
  return Explainer(g).run();
}
