//===- Optimizer.cpp - Appending the optimizer's update -------------------===//
//
// optimizer<kind=adam,beta1=0.9,...> turns a graph with gradients into a
// whole training step: the new value of every parameter and of its
// optimizer state, as ordinary ops recorded as `update`s, so the update is
// compiled (and later fused) with the forward and backward code.
//  1. Read the options: `kind` and every argument of that optimizer but lr,
//     defaulted from ir/Optimizers.cpp's table.
//  2. Add the scalar inputs the kind reads (optimizer.lr, ...), f32[].
//  3. For each parameter p with gradient g: declare its state `p.NAME`
//     (zeros, as torch.optim initialises it), build torch.optim's update
//     with the formulas and operation order of PyTorch 1.13's
//     single-tensor code, and record the updates. (PyTorch's vectorised
//     kernels may fuse a multiply and an add into one FMA where Kiln rounds
//     twice, so results agree to float32 rounding, not bit for bit.)
//
//===----------------------------------------------------------------------===//
#include "ir/Grad.h"
#include "ir/Optimizers.h"
#include "passes/Passes.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"

using namespace kiln;

namespace {

class UpdateBuilder {
public:
  UpdateBuilder(Graph &g, const OptimizerConfig &opt,
                const llvm::StringMap<Node *> &scalars)
      : g(g), opt(opt), scalars(scalars) {}

  /// Appends p's update (and its state's) given its gradient.
  void build(Node *p, Node *grad);

private:
  Node *c(double v) { return b->constant(v, shape); }
  Node *scalar(llvm::StringRef name) {
    return b->broadcastTo(scalars.lookup(name), shape);
  }
  Node *state(llvm::StringRef suffix) {
    std::string name = param->stringAttr("name") + "." + suffix.str();
    auto n = g.add(Op::State, {},
                   {{"init", std::string("zeros")}, {"name", name}}, param->loc,
                   param->type);
    return llvm::cantFail(std::move(n));
  }
  void update(Node *leaf, Node *value) {
    g.updates.push_back({leaf->stringAttr("name"), value});
  }
  /// grad + weight_decay * p, where torch.optim adds weight decay.
  Node *decayed(Node *grad) {
    double wd = opt.arg("weight_decay");
    return wd != 0 ? b->add(grad, b->mul(c(wd), param)) : grad;
  }
  /// x * beta + ((1 - beta) * y) * z: torch's mul_(beta).addcmul_(y, z,
  /// value=1 - beta).
  Node *average(Node *x, double beta, Node *y, Node *z) {
    return b->add(b->mul(x, c(beta)), b->mul(b->mul(c(1 - beta), y), z));
  }
  void sgd(Node *grad);
  void adagrad(Node *grad);
  void adadelta(Node *grad);
  void rmsprop(Node *grad);
  void adam(Node *grad, bool decoupled);

  Graph &g;
  const OptimizerConfig &opt;
  const llvm::StringMap<Node *> &scalars;
  Node *param = nullptr;
  std::optional<GradBuilder> b;
  Shape shape;
};

void UpdateBuilder::build(Node *p, Node *grad) {
  param = p;
  b.emplace(g, *p);
  shape = p->type.shape;
  if (opt.kind == "sgd")
    sgd(grad);
  else if (opt.kind == "adagrad")
    adagrad(grad);
  else if (opt.kind == "adadelta")
    adadelta(grad);
  else if (opt.kind == "rmsprop")
    rmsprop(grad);
  else
    adam(grad, opt.kind == "adamw");
}

void UpdateBuilder::sgd(Node *grad) {
  Node *d = decayed(grad);
  double momentum = opt.arg("momentum");
  if (momentum != 0) {
    // The buffer starts as the first gradient: with a zero buffer,
    // momentum * 0 + grad_scale * d where grad_scale is 1 on the first
    // step and 1 - dampening after it.
    Node *buf = state("momentum_buffer");
    Node *damped = opt.arg("dampening") != 0 ? b->mul(d, scalar("grad_scale"))
                                             : d;
    Node *newBuf = b->add(b->mul(buf, c(momentum)), damped);
    update(buf, newBuf);
    d = opt.arg("nesterov") != 0 ? b->add(d, b->mul(c(momentum), newBuf))
                                 : newBuf;
  }
  update(param, b->sub(param, b->mul(scalar("lr"), d)));
}

void UpdateBuilder::adagrad(Node *grad) {
  Node *d = decayed(grad);
  Node *sum = state("sum");
  Node *newSum = b->add(sum, b->mul(d, d));
  update(sum, newSum);
  Node *std = b->add(b->op(Op::Sqrt, {newSum}), c(opt.arg("eps")));
  update(param, b->sub(param, b->div(b->mul(scalar("clr"), d), std)));
}

void UpdateBuilder::adadelta(Node *grad) {
  Node *d = decayed(grad);
  double rho = opt.arg("rho"), eps = opt.arg("eps");
  Node *sq = state("square_avg"), *acc = state("acc_delta");
  Node *newSq = average(sq, rho, d, d);
  Node *std = b->op(Op::Sqrt, {b->add(newSq, c(eps))});
  Node *delta =
      b->mul(b->div(b->op(Op::Sqrt, {b->add(acc, c(eps))}), std), d);
  update(sq, newSq);
  update(acc, average(acc, rho, delta, delta));
  update(param, b->sub(param, b->mul(scalar("lr"), delta)));
}

void UpdateBuilder::rmsprop(Node *grad) {
  Node *d = decayed(grad);
  double alpha = opt.arg("alpha"), momentum = opt.arg("momentum");
  Node *sq = state("square_avg");
  Node *newSq = average(sq, alpha, d, d);
  update(sq, newSq);
  Node *avg;
  if (opt.arg("centered") != 0) {
    Node *ga = state("grad_avg");
    Node *newGa = b->add(b->mul(ga, c(alpha)), b->mul(c(1 - alpha), d));
    update(ga, newGa);
    avg = b->op(Op::Sqrt, {b->sub(newSq, b->mul(newGa, newGa))});
  } else {
    avg = b->op(Op::Sqrt, {newSq});
  }
  avg = b->add(avg, c(opt.arg("eps")));
  if (momentum > 0) {
    Node *buf = state("momentum_buffer");
    Node *newBuf = b->add(b->mul(buf, c(momentum)), b->div(d, avg));
    update(buf, newBuf);
    update(param, b->sub(param, b->mul(scalar("lr"), newBuf)));
  } else {
    update(param, b->sub(param, b->div(b->mul(scalar("lr"), d), avg)));
  }
}

void UpdateBuilder::adam(Node *grad, bool decoupled) {
  // AdamW decays the parameter itself first; Adam adds weight decay to the
  // gradient.
  Node *p = param;
  Node *d = grad;
  if (decoupled) {
    if (opt.arg("weight_decay") != 0)
      p = b->mul(p, scalar("decay"));
  } else {
    d = decayed(grad);
  }
  double beta1 = opt.arg("beta1"), beta2 = opt.arg("beta2");
  Node *m = state("exp_avg"), *v = state("exp_avg_sq");
  Node *newM = b->add(b->mul(m, c(beta1)), b->mul(d, c(1 - beta1)));
  Node *newV = average(v, beta2, d, d);
  update(m, newM);
  update(v, newV);
  Node *denom = b->add(
      b->div(b->op(Op::Sqrt, {newV}), scalar("bias_correction2_sqrt")),
      c(opt.arg("eps")));
  update(param, b->sub(p, b->div(b->mul(scalar("step_size"), newM), denom)));
}

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
  llvm::StringMap<Node *> grads;
  for (const NamedGradient &gr : g.gradients)
    grads[gr.name] = gr.value;
  for (Node *p : ps) {
    std::string name = p->stringAttr("name");
    if (!grads.count(name))
      return makeError("pass 'optimizer': parameter '" + name +
                       "' has no gradient; run autodiff first");
    if (llvm::any_of(g.updates,
                     [&](const StateUpdate &u) { return u.name == name; }))
      return makeError("pass 'optimizer': parameter '" + name +
                       "' is already updated");
  }
  llvm::StringMap<Node *> scalars;
  for (const std::string &s : opt->scalarNames()) {
    std::string name = optimizerInputName(s);
    if (g.findLeaf(Op::Input, name))
      return makeError("pass 'optimizer': the graph already has an input '" +
                       name + "'");
    scalars[s] = llvm::cantFail(g.add(Op::Input, {}, {{"name", name}}, {},
                                      TensorType{DType::F32, {}}));
  }
  UpdateBuilder builder(g, *opt, scalars);
  for (Node *p : ps)
    builder.build(p, grads.lookup(p->stringAttr("name")));
  return true;
}
