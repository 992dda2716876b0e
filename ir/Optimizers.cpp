//===- Optimizers.cpp - The optimizers a train block can name -------------===//
//
// Arguments and defaults are torch.optim's (PyTorch 1.13). The scalars follow
// its single-tensor code paths: Adam's step_size = lr / (1 - beta1^t) and
// sqrt(1 - beta2^t); Adagrad's lr / (1 + (t - 1) lr_decay); AdamW's decay
// 1 - lr weight_decay; SGD's momentum buffer starts as the first step's
// gradient, so dampening applies from the second step on.
//
//===----------------------------------------------------------------------===//
#include "ir/Optimizers.h"
#include "llvm/ADT/STLExtras.h"
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace kiln;

llvm::ArrayRef<OptimizerInfo> kiln::optimizerTable() {
  static const std::vector<OptimizerInfo> table = {
      {"sgd",
       {{"lr", std::nullopt},
        {"momentum", 0.0},
        {"dampening", 0.0},
        {"weight_decay", 0.0},
        {"nesterov", 0.0, true}}},
      {"adagrad",
       {{"lr", 1e-2}, {"lr_decay", 0.0}, {"weight_decay", 0.0}, {"eps", 1e-10}}},
      {"adadelta",
       {{"lr", 1.0}, {"rho", 0.9}, {"eps", 1e-6}, {"weight_decay", 0.0}}},
      {"rmsprop",
       {{"lr", 1e-2},
        {"alpha", 0.99},
        {"eps", 1e-8},
        {"weight_decay", 0.0},
        {"momentum", 0.0},
        {"centered", 0.0, true}}},
      {"adam",
       {{"lr", 1e-3},
        {"beta1", 0.9},
        {"beta2", 0.999},
        {"eps", 1e-8},
        {"weight_decay", 0.0}}},
      {"adamw",
       {{"lr", 1e-3},
        {"beta1", 0.9},
        {"beta2", 0.999},
        {"eps", 1e-8},
        {"weight_decay", 1e-2}}},
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
  if (kind == "sgd")
    return arg("momentum") != 0 ? std::vector<std::string>{"momentum_buffer"}
                                : std::vector<std::string>{};
  if (kind == "adagrad")
    return {"sum"};
  if (kind == "adadelta")
    return {"square_avg", "acc_delta"};
  if (kind == "rmsprop") {
    std::vector<std::string> s{"square_avg"};
    if (arg("momentum") > 0)
      s.push_back("momentum_buffer");
    if (arg("centered") != 0)
      s.push_back("grad_avg");
    return s;
  }
  return {"exp_avg", "exp_avg_sq"}; // adam, adamw
}

std::vector<std::string> OptimizerConfig::scalarNames() const {
  if (kind == "sgd")
    return arg("momentum") != 0 && arg("dampening") != 0
               ? std::vector<std::string>{"lr", "grad_scale"}
               : std::vector<std::string>{"lr"};
  if (kind == "adagrad")
    return {"clr"};
  if (kind == "adam")
    return {"step_size", "bias_correction2_sqrt"};
  if (kind == "adamw")
    return arg("weight_decay") != 0
               ? std::vector<std::string>{"step_size", "bias_correction2_sqrt",
                                          "decay"}
               : std::vector<std::string>{"step_size",
                                          "bias_correction2_sqrt"};
  return {"lr"}; // adadelta, rmsprop
}

std::vector<double> OptimizerConfig::scalars(double lr, int64_t step) const {
  std::vector<double> out;
  double t = double(step);
  for (const std::string &name : scalarNames()) {
    if (name == "lr")
      out.push_back(lr);
    else if (name == "grad_scale")
      out.push_back(step == 1 ? 1.0 : 1.0 - arg("dampening"));
    else if (name == "clr")
      out.push_back(lr / (1 + (t - 1) * arg("lr_decay")));
    else if (name == "step_size")
      out.push_back(lr / (1 - std::pow(arg("beta1"), t)));
    else if (name == "bias_correction2_sqrt")
      out.push_back(std::sqrt(1 - std::pow(arg("beta2"), t)));
    else if (name == "decay")
      out.push_back(1 - lr * arg("weight_decay"));
  }
  return out;
}

/// The shortest text that reads back as v.
static std::string number(double v) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v)
      break;
  }
  return buf;
}

std::string OptimizerConfig::passOptions() const {
  std::string out = "kind=" + kind;
  if (const OptimizerInfo *info = findOptimizer(kind))
    for (const OptimizerArg &a : info->args)
      if (llvm::StringRef(a.name) != "lr")
        out += "," + std::string(a.name) + "=" +
               (a.isFlag ? (arg(a.name) != 0 ? "true" : "false")
                         : number(arg(a.name)));
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
                       : number(arg(a.name)));
    }
  return out + ")";
}
