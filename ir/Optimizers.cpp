//===- Optimizers.cpp - The optimizers a train block can name -------------===//
//
// Arguments and defaults are torch.optim's (PyTorch 1.13). Each optimizer is
// one block below: its state, its per-step scalars (computed in float64, as
// PyTorch computes them in Python floats) and its update, which builds
// ordinary ops with an UpdateBuilder.
//
//===----------------------------------------------------------------------===//
#include "ir/Optimizers.h"
#include "ir/Grad.h"
#include "ir/Printer.h"
#include "llvm/ADT/STLExtras.h"
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace kiln;

//===-- The optimizers, one block each -----------------------------------===//
//
// Each update follows PyTorch 1.13's single-tensor code: its formulas, its
// operation order and where weight decay and eps go. (Its vectorised
// kernels may fuse a multiply and an add into one FMA where Kiln rounds
// twice, so results agree to float32 rounding, not bit for bit.)

namespace kiln {

/// Builds one parameter's update from ordinary ops.
class UpdateBuilder {
public:
  UpdateBuilder(Graph &g, const OptimizerConfig &opt, Node *param, Node *grad,
                const std::map<std::string, Node *> &scalars)
      : opt(opt), param(param), grad(grad), g(g), b(g, *param),
        scalars(scalars), shape(param->type.shape) {}

  const OptimizerConfig &opt;
  Node *const param, *const grad;

  double arg(llvm::StringRef name) const { return opt.arg(name); }
  Node *c(double v) { return b.constant(v, shape); }
  /// A scalar input, broadcast to the parameter's shape.
  Node *scalar(llvm::StringRef name) {
    return b.broadcastTo(scalars.at(name.str()), shape);
  }
  /// The parameter's state `NAME.suffix`, zeros to begin with.
  Node *state(llvm::StringRef suffix) {
    std::string name = param->stringAttr("name") + "." + suffix.str();
    return llvm::cantFail(
        g.add(Op::State, {}, {{"init", std::string("zeros")}, {"name", name}},
              param->loc, param->type));
  }
  void update(Node *leaf, Node *value) {
    g.updates.push_back({leaf->stringAttr("name"), value});
  }
  Node *add(Node *x, Node *y) { return b.add(x, y); }
  Node *sub(Node *x, Node *y) { return b.sub(x, y); }
  Node *mul(Node *x, Node *y) { return b.mul(x, y); }
  Node *div(Node *x, Node *y) { return b.div(x, y); }
  Node *sqrt(Node *x) { return b.op(Op::Sqrt, {x}); }
  /// grad + weight_decay * param: where torch.optim adds weight decay.
  Node *decayed() {
    double wd = arg("weight_decay");
    return wd != 0 ? add(grad, mul(c(wd), param)) : grad;
  }
  /// x * beta + ((1 - beta) * y) * z: torch's x.mul_(beta).addcmul_(y, z,
  /// value=1 - beta).
  Node *average(Node *x, double beta, Node *y, Node *z) {
    return add(mul(x, c(beta)), mul(mul(c(1 - beta), y), z));
  }

private:
  Graph &g;
  GradBuilder b;
  const std::map<std::string, Node *> &scalars;
  Shape shape;
};

} // namespace kiln

namespace {

using Scalars = std::vector<std::pair<std::string, double>>;

//===-- sgd: momentum, dampening, Nesterov --------------------------------===//
// The momentum buffer starts as the first step's gradient: with a zero
// buffer, momentum * 0 + grad_scale * d, where grad_scale is 1 at step 1
// and 1 - dampening after it.

std::vector<std::string> sgdStates(const OptimizerConfig &o) {
  if (o.arg("momentum") != 0)
    return {"momentum_buffer"};
  return {};
}

Scalars sgdScalars(const OptimizerConfig &o, double lr, int64_t t) {
  Scalars s{{"lr", lr}};
  if (o.arg("momentum") != 0 && o.arg("dampening") != 0)
    s.push_back({"grad_scale", t == 1 ? 1.0 : 1.0 - o.arg("dampening")});
  return s;
}

void sgdUpdate(UpdateBuilder &b) {
  Node *d = b.decayed();
  if (double momentum = b.arg("momentum")) {
    Node *buf = b.state("momentum_buffer");
    Node *damped =
        b.arg("dampening") != 0 ? b.mul(d, b.scalar("grad_scale")) : d;
    Node *newBuf = b.add(b.mul(buf, b.c(momentum)), damped);
    b.update(buf, newBuf);
    d = b.arg("nesterov") != 0 ? b.add(d, b.mul(b.c(momentum), newBuf))
                               : newBuf;
  }
  b.update(b.param, b.sub(b.param, b.mul(b.scalar("lr"), d)));
}

//===-- adagrad: lr / (1 + (t - 1) lr_decay), eps outside the root -------===//

std::vector<std::string> adagradStates(const OptimizerConfig &) {
  return {"sum"};
}

Scalars adagradScalars(const OptimizerConfig &o, double lr, int64_t t) {
  return {{"clr", lr / (1 + double(t - 1) * o.arg("lr_decay"))}};
}

void adagradUpdate(UpdateBuilder &b) {
  Node *d = b.decayed();
  Node *sum = b.state("sum");
  Node *newSum = b.add(sum, b.mul(d, d));
  b.update(sum, newSum);
  Node *std = b.add(b.sqrt(newSum), b.c(b.arg("eps")));
  b.update(b.param, b.sub(b.param, b.div(b.mul(b.scalar("clr"), d), std)));
}

//===-- adadelta: eps inside both roots ----------------------------------===//

std::vector<std::string> adadeltaStates(const OptimizerConfig &) {
  return {"square_avg", "acc_delta"};
}

Scalars lrOnly(const OptimizerConfig &, double lr, int64_t) {
  return {{"lr", lr}};
}

void adadeltaUpdate(UpdateBuilder &b) {
  Node *d = b.decayed();
  double rho = b.arg("rho"), eps = b.arg("eps");
  Node *sq = b.state("square_avg"), *acc = b.state("acc_delta");
  Node *newSq = b.average(sq, rho, d, d);
  Node *std = b.sqrt(b.add(newSq, b.c(eps)));
  Node *delta = b.mul(b.div(b.sqrt(b.add(acc, b.c(eps))), std), d);
  b.update(sq, newSq);
  b.update(acc, b.average(acc, rho, delta, delta));
  b.update(b.param, b.sub(b.param, b.mul(b.scalar("lr"), delta)));
}

//===-- rmsprop: centered, momentum, eps outside the root ----------------===//

std::vector<std::string> rmspropStates(const OptimizerConfig &o) {
  std::vector<std::string> s{"square_avg"};
  if (o.arg("momentum") > 0)
    s.push_back("momentum_buffer");
  if (o.arg("centered") != 0)
    s.push_back("grad_avg");
  return s;
}

void rmspropUpdate(UpdateBuilder &b) {
  Node *d = b.decayed();
  double alpha = b.arg("alpha"), momentum = b.arg("momentum");
  Node *sq = b.state("square_avg");
  Node *newSq = b.average(sq, alpha, d, d);
  b.update(sq, newSq);
  Node *avg;
  if (b.arg("centered") != 0) {
    Node *ga = b.state("grad_avg");
    Node *newGa = b.add(b.mul(ga, b.c(alpha)), b.mul(b.c(1 - alpha), d));
    b.update(ga, newGa);
    avg = b.sqrt(b.sub(newSq, b.mul(newGa, newGa)));
  } else {
    avg = b.sqrt(newSq);
  }
  avg = b.add(avg, b.c(b.arg("eps")));
  if (momentum > 0) {
    Node *buf = b.state("momentum_buffer");
    Node *newBuf = b.add(b.mul(buf, b.c(momentum)), b.div(d, avg));
    b.update(buf, newBuf);
    b.update(b.param, b.sub(b.param, b.mul(b.scalar("lr"), newBuf)));
  } else {
    b.update(b.param, b.sub(b.param, b.div(b.mul(b.scalar("lr"), d), avg)));
  }
}

//===-- adam and adamw: bias corrections as scalars ----------------------===//
// step_size = lr / (1 - beta1^t), denom = sqrt(v) / sqrt(1 - beta2^t) + eps.
// AdamW decays the parameter by 1 - lr weight_decay first; Adam adds weight
// decay to the gradient.

std::vector<std::string> adamStates(const OptimizerConfig &) {
  return {"exp_avg", "exp_avg_sq"};
}

Scalars adamScalars(const OptimizerConfig &o, double lr, int64_t t) {
  Scalars s{{"step_size", lr / (1 - std::pow(o.arg("beta1"), double(t)))},
            {"bias_correction2_sqrt",
             std::sqrt(1 - std::pow(o.arg("beta2"), double(t)))}};
  if (o.kind == "adamw" && o.arg("weight_decay") != 0)
    s.push_back({"decay", 1 - lr * o.arg("weight_decay")});
  return s;
}

void adamUpdate(UpdateBuilder &b) {
  Node *p = b.param, *d = b.grad;
  if (b.opt.kind == "adamw") {
    if (b.arg("weight_decay") != 0)
      p = b.mul(p, b.scalar("decay"));
  } else {
    d = b.decayed();
  }
  double beta1 = b.arg("beta1"), beta2 = b.arg("beta2");
  Node *m = b.state("exp_avg"), *v = b.state("exp_avg_sq");
  Node *newM = b.add(b.mul(m, b.c(beta1)), b.mul(d, b.c(1 - beta1)));
  Node *newV = b.average(v, beta2, d, d);
  b.update(m, newM);
  b.update(v, newV);
  Node *denom = b.add(b.div(b.sqrt(newV), b.scalar("bias_correction2_sqrt")),
                      b.c(b.arg("eps")));
  b.update(b.param, b.sub(p, b.div(b.mul(b.scalar("step_size"), newM), denom)));
}

} // namespace

llvm::ArrayRef<OptimizerInfo> kiln::optimizerTable() {
  static const std::vector<OptimizerInfo> table = {
      {"sgd",
       {{"lr", std::nullopt},
        {"momentum", 0.0},
        {"dampening", 0.0},
        {"weight_decay", 0.0},
        {"nesterov", 0.0, true}},
       sgdStates,
       sgdScalars,
       sgdUpdate},
      {"adagrad",
       {{"lr", 1e-2}, {"lr_decay", 0.0}, {"weight_decay", 0.0}, {"eps", 1e-10}},
       adagradStates,
       adagradScalars,
       adagradUpdate},
      {"adadelta",
       {{"lr", 1.0}, {"rho", 0.9}, {"eps", 1e-6}, {"weight_decay", 0.0}},
       adadeltaStates,
       lrOnly,
       adadeltaUpdate},
      {"rmsprop",
       {{"lr", 1e-2},
        {"alpha", 0.99},
        {"eps", 1e-8},
        {"weight_decay", 0.0},
        {"momentum", 0.0},
        {"centered", 0.0, true}},
       rmspropStates,
       lrOnly,
       rmspropUpdate},
      {"adam",
       {{"lr", 1e-3},
        {"beta1", 0.9},
        {"beta2", 0.999},
        {"eps", 1e-8},
        {"weight_decay", 0.0}},
       adamStates,
       adamScalars,
       adamUpdate},
      {"adamw",
       {{"lr", 1e-3},
        {"beta1", 0.9},
        {"beta2", 0.999},
        {"eps", 1e-8},
        {"weight_decay", 1e-2}},
       adamStates,
       adamScalars,
       adamUpdate},
  };
  return table;
}

const OptimizerInfo *kiln::findOptimizer(llvm::StringRef name) {
  for (const OptimizerInfo &o : optimizerTable())
    if (name == o.name)
      return &o;
  return nullptr;
}

std::string kiln::optimizerInputName(llvm::StringRef name) {
  return "optimizer." + name.str();
}

double OptimizerConfig::arg(llvm::StringRef name) const {
  auto it = args.find(name.str());
  assert(it != args.end() && "an optimizer argument the kind does not have");
  return it == args.end() ? 0.0 : it->second;
}

llvm::Error OptimizerConfig::validate() const {
  auto error = [](const llvm::Twine &msg) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
  };
  const OptimizerInfo *info = findOptimizer(kind);
  if (!info)
    return error("unknown optimizer '" + kind + "'");
  for (auto &[name, v] : args)
    if (!llvm::any_of(info->args, [&, &name = name](const OptimizerArg &a) {
          return name == a.name;
        }))
      return error(kind + " has no argument '" + name + "'");
  for (const OptimizerArg &a : info->args) {
    auto it = args.find(a.name);
    if (it == args.end())
      return error(kind + " needs '" + a.name + "'");
    double v = it->second;
    if (v < 0 || !std::isfinite(v))
      return error("'" + llvm::Twine(a.name) + "' of " + kind +
                   " must be a finite number >= 0");
    if (a.isFlag && v != 0 && v != 1)
      return error("'" + llvm::Twine(a.name) + "' of " + kind +
                   " must be true or false");
  }
  for (const char *beta : {"beta1", "beta2", "alpha", "rho"})
    if (args.count(beta) && args.at(beta) >= 1)
      return error("'" + llvm::Twine(beta) + "' of " + kind +
                   " must be below 1");
  if (kind == "sgd" && arg("nesterov") != 0 &&
      (arg("momentum") <= 0 || arg("dampening") != 0))
    return error("Nesterov momentum needs momentum > 0 and zero dampening");
  return llvm::Error::success();
}

std::vector<std::string> OptimizerConfig::stateNames() const {
  return findOptimizer(kind)->states(*this);
}

std::vector<std::string> OptimizerConfig::scalarNames() const {
  std::vector<std::string> names;
  for (auto &[name, v] : findOptimizer(kind)->scalars(*this, 1.0, 1))
    names.push_back(name);
  return names;
}

std::vector<double> OptimizerConfig::scalars(double lr, int64_t step) const {
  std::vector<double> values;
  for (auto &[name, v] : findOptimizer(kind)->scalars(*this, lr, step))
    values.push_back(v);
  return values;
}

void kiln::buildUpdate(Graph &g, const OptimizerConfig &opt, Node *param,
                       Node *grad,
                       const std::map<std::string, Node *> &scalars) {
  UpdateBuilder b(g, opt, param, grad, scalars);
  findOptimizer(opt.kind)->update(b);
}

std::string OptimizerConfig::passOptions() const {
  std::string out = "kind=" + kind;
  if (const OptimizerInfo *info = findOptimizer(kind))
    for (const OptimizerArg &a : info->args)
      if (llvm::StringRef(a.name) != "lr")
        out += "," + std::string(a.name) + "=" +
               (a.isFlag ? (arg(a.name) != 0 ? "true" : "false")
                         : formatFloat(arg(a.name)));
  return out;
}

std::string OptimizerConfig::str() const {
  std::string out = kind + "(";
  if (const OptimizerInfo *info = findOptimizer(kind))
    for (const OptimizerArg &a : info->args) {
      if (out.back() != '(')
        out += ", ";
      out += std::string(a.name) + " = " +
             (a.isFlag ? (arg(a.name) != 0 ? "true" : "false")
                       : formatFloat(arg(a.name)));
    }
  return out + ")";
}
