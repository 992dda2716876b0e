//===- Optimizer.cpp - Appending the optimizer's update -------------------===//
//
// optimizer<kind=adam,beta1=0.9,...> turns a graph with gradients into a
// whole training step: the new value of every parameter and of its
// optimizer state, as ordinary ops recorded as `update`s, so the update is
// compiled (and later fused) with the forward and backward code.
//  1. Read the options: `kind` and every argument of that optimizer but lr,
//     defaulted from ir/Optimizers.cpp's table.
//  2. Add the scalar inputs the kind reads (optimizer.lr, ...), f32[].
//  3. For each parameter p with gradient g: its optimizer's block in
//     ir/Optimizers.cpp declares its state `p.NAME` (zeros, as torch.optim
//     initialises it), builds torch.optim's update and records the updates.
//
//===----------------------------------------------------------------------===//
#include "ir/Optimizers.h"
#include "passes/Passes.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

using namespace kiln;

namespace {

/// The optimizer the options name, with every argument.
llvm::Expected<OptimizerConfig> readOptions(const PassParams &params) {
  auto kind = params.string("kind", std::nullopt);
  if (!kind)
    return kind.takeError();
  const OptimizerInfo *info = findOptimizer(*kind);
  if (!info) {
    std::vector<std::string> names;
    for (const OptimizerInfo &o : optimizerTable())
      names.push_back(o.name);
    return makeError("pass 'optimizer': unknown kind '" + *kind +
                     "' (kinds: " + llvm::join(names, ", ") + ")");
  }
  OptimizerConfig opt{*kind, {}};
  for (const OptimizerArg &a : info->args) {
    if (llvm::StringRef(a.name) == "lr") {
      if (params.has("lr"))
        return makeError("pass 'optimizer': lr is not an option but the "
                         "scalar input optimizer.lr (or the step size), so "
                         "a schedule does not change the graph");
      // Any valid rate: the graph reads the real one from its inputs.
      opt.args["lr"] = 1;
      continue;
    }
    llvm::Expected<double> v = 0.0;
    if (a.isFlag) {
      auto f = params.flag(a.name, *a.def != 0);
      if (!f)
        return f.takeError();
      v = *f ? 1.0 : 0.0;
    } else {
      v = params.number(a.name, a.def);
    }
    if (!v)
      return v.takeError();
    opt.args[a.name] = *v;
  }
  if (auto e = opt.validate())
    return makeError("pass 'optimizer': " + llvm::toString(std::move(e)));
  return opt;
}

} // namespace

llvm::Expected<bool> kiln::runOptimizer(Graph &g, const PassParams &params) {
  auto opt = readOptions(params);
  if (!opt)
    return opt.takeError();
  if (auto e = params.checkAllUsed())
    return std::move(e);
  std::vector<Node *> ps = g.leaves(Op::Param);
  if (ps.empty())
    return false;
  if (auto e = expectF32(g, "optimizer"))
    return std::move(e);
  llvm::StringMap<Node *> grads;
  for (const NamedGradient &gr : g.gradients)
    grads[gr.name] = gr.value;
  llvm::StringSet<> updated;
  for (const StateUpdate &u : g.updates)
    updated.insert(u.name);
  for (Node *p : ps) {
    std::string name = p->stringAttr("name");
    if (!grads.count(name))
      return makeError("pass 'optimizer': parameter '" + name +
                       "' has no gradient; run autodiff first");
    if (updated.contains(name))
      return makeError("pass 'optimizer': parameter '" + name +
                       "' is already updated");
  }
  std::map<std::string, Node *> scalars;
  for (const std::string &s : opt->scalarNames()) {
    std::string name = optimizerInputName(s);
    if (g.findLeaf(Op::Input, name))
      return makeError("pass 'optimizer': the graph already has an input '" +
                       name + "'");
    scalars[s] = llvm::cantFail(
        g.add(Op::Input, {}, {{"name", name}}, {}, TensorType{DType::F32, {}}));
  }
  for (Node *p : ps)
    buildUpdate(g, *opt, p, grads.lookup(p->stringAttr("name")), scalars);
  return true;
}
