//===- Train.cpp - Train blocks -------------------------------------------===//
//
// Settings are constants: numbers, strings, true/false and calls such as
// adam(lr = 0.001). Optimizer arguments and defaults follow torch.optim.
//
//===----------------------------------------------------------------------===//
#include "frontend/Train.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include <cmath>

using namespace kiln;

namespace {

struct OptArg {
  const char *name;
  std::optional<double> def; ///< None: required.
};
struct OptimizerInfo {
  const char *name;
  std::vector<OptArg> args;
};

const std::vector<OptimizerInfo> &optimizers() {
  static const std::vector<OptimizerInfo> table = {
      {"sgd",
       {{"lr", std::nullopt},
        {"momentum", 0.0},
        {"dampening", 0.0},
        {"weight_decay", 0.0},
        {"nesterov", 0.0}}},
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
      {"rmsprop",
       {{"lr", 1e-2},
        {"alpha", 0.99},
        {"eps", 1e-8},
        {"weight_decay", 0.0},
        {"momentum", 0.0}}},
      {"adagrad",
       {{"lr", 1e-2},
        {"lr_decay", 0.0},
        {"weight_decay", 0.0},
        {"eps", 1e-10}}},
      {"adadelta",
       {{"lr", 1.0}, {"rho", 0.9}, {"eps", 1e-6}, {"weight_decay", 0.0}}},
  };
  return table;
}

const char *const kKeys[] = {"data", "batch", "epochs", "optimizer", "seed"};

std::string suggest(llvm::StringRef name, llvm::ArrayRef<std::string> options) {
  for (const std::string &o : options)
    if (name.edit_distance(o) <= 2)
      return "; did you mean '" + o + "'?";
  return "";
}

class Checker {
public:
  Checker(Diagnostics &diags) : diags(diags) {}
  std::optional<TrainConfig> check(const Module &m, const TrainDecl &t);

private:
  std::optional<int64_t> positiveInt(const TrainSetting &s, int64_t min);
  bool data(const TrainSetting &s, TrainConfig &c);
  bool optimizer(const TrainSetting &s, TrainConfig &c);
  /// A number, possibly negated, or true/false (1/0).
  std::optional<double> number(const Expr &e);
  Diagnostics &diags;
};

std::optional<double> Checker::number(const Expr &e) {
  if (e.kind == ExprKind::Int || e.kind == ExprKind::Float)
    return e.floatValue;
  if (e.kind == ExprKind::Unary)
    if (auto v = number(*e.args[0]))
      return -*v;
  if (e.kind == ExprKind::Name && (e.name == "true" || e.name == "false"))
    return e.name == "true" ? 1.0 : 0.0;
  return std::nullopt;
}

std::optional<int64_t> Checker::positiveInt(const TrainSetting &s,
                                            int64_t min) {
  const Expr &e = *s.value;
  if (e.kind != ExprKind::Int || e.intValue < min) {
    diags.error(e.range.Start,
                "'" + s.key + "' must be an integer of at least " +
                    llvm::Twine(min),
                e.range);
    return std::nullopt;
  }
  return e.intValue;
}

bool Checker::data(const TrainSetting &s, TrainConfig &c) {
  const Expr &e = *s.value;
  if (e.kind != ExprKind::Call || e.name != "fashion_mnist") {
    diags.error(e.range.Start,
                "unknown data source; Kiln provides "
                "fashion_mnist(dir = \"...\")",
                e.range);
    return false;
  }
  if (!e.args.empty()) {
    diags.error(e.args[0]->range.Start, "fashion_mnist takes only the "
                                        "keyword argument dir");
    return false;
  }
  c.data = e.name;
  c.dataDir = kFashionMnistDir;
  c.dataLoc = e.opLoc;
  for (size_t k = 0; k < e.kwargs.size(); ++k) {
    auto &[key, v] = e.kwargs[k];
    if (key != "dir") {
      diags.error(e.kwargLocs[k],
                  "fashion_mnist has no argument '" + key + "'; it takes dir");
      return false;
    }
    if (v->kind != ExprKind::String) {
      diags.error(v->range.Start, "dir must be a string", v->range);
      return false;
    }
    c.dataDir = v->name;
  }
  return true;
}

bool Checker::optimizer(const TrainSetting &s, TrainConfig &c) {
  const Expr &e = *s.value;
  std::vector<std::string> names;
  for (const OptimizerInfo &o : optimizers())
    names.push_back(o.name);
  const OptimizerInfo *info = nullptr;
  for (const OptimizerInfo &o : optimizers())
    if (e.kind == ExprKind::Call && e.name == o.name)
      info = &o;
  if (!info) {
    diags.error(e.opLoc,
                "unknown optimizer" +
                    (e.kind == ExprKind::Call
                         ? " '" + e.name + "'" + suggest(e.name, names)
                         : std::string()) +
                    "; Kiln provides " + llvm::join(names, ", "),
                e.range);
    return false;
  }
  c.optimizer = info->name;
  std::vector<std::optional<double>> vals(info->args.size());
  auto set = [&](size_t i, const Expr &v) {
    auto x = number(v);
    if (!x) {
      diags.error(v.range.Start,
                  "'" + llvm::Twine(info->args[i].name) + "' must be a number",
                  v.range);
      return false;
    }
    if (vals[i]) {
      diags.error(v.range.Start,
                  "'" + llvm::Twine(info->args[i].name) + "' is given twice",
                  v.range);
      return false;
    }
    vals[i] = *x;
    return true;
  };
  if (e.args.size() > info->args.size()) {
    diags.error(e.opLoc, llvm::Twine(info->name) + " takes at most " +
                             llvm::Twine(info->args.size()) + " arguments");
    return false;
  }
  for (size_t i = 0; i < e.args.size(); ++i)
    if (!set(i, *e.args[i]))
      return false;
  for (size_t k = 0; k < e.kwargs.size(); ++k) {
    const std::string &key = e.kwargs[k].first;
    const ExprPtr &v = e.kwargs[k].second;
    auto it = llvm::find_if(info->args,
                            [&](const OptArg &a) { return key == a.name; });
    if (it == info->args.end()) {
      std::vector<std::string> known;
      for (const OptArg &a : info->args)
        known.push_back(a.name);
      diags.error(e.kwargLocs[k], llvm::Twine(info->name) +
                                      " has no argument '" + key + "'" +
                                      suggest(key, known) + " (it takes " +
                                      llvm::join(known, ", ") + ")");
      return false;
    }
    if (!set(it - info->args.begin(), *v))
      return false;
  }
  for (size_t i = 0; i < info->args.size(); ++i) {
    if (!vals[i] && !info->args[i].def) {
      diags.error(e.opLoc, llvm::Twine(info->name) + " needs '" +
                               info->args[i].name + "'");
      return false;
    }
    double v = vals[i].value_or(info->args[i].def.value_or(0));
    if (v < 0 || !std::isfinite(v)) {
      diags.error(e.opLoc, "'" + llvm::Twine(info->args[i].name) + "' of " +
                               info->name + " must be a finite number >= 0");
      return false;
    }
    c.optimizerArgs[info->args[i].name] = v;
  }
  for (const char *beta : {"beta1", "beta2", "alpha", "rho"})
    if (c.optimizerArgs.count(beta) && c.optimizerArgs[beta] >= 1) {
      diags.error(e.opLoc, "'" + llvm::Twine(beta) + "' must be below 1");
      return false;
    }
  if (c.optimizer == "sgd" && c.optimizerArgs["nesterov"] != 0 &&
      (c.optimizerArgs["momentum"] <= 0 || c.optimizerArgs["dampening"] != 0)) {
    diags.error(e.opLoc, "Nesterov momentum needs momentum > 0 and zero "
                         "dampening");
    return false;
  }
  return true;
}

std::optional<TrainConfig> Checker::check(const Module &m, const TrainDecl &t) {
  TrainConfig c;
  c.model = t.model;
  c.loc = t.loc;
  bool ok = true;
  const FuncDecl *f = m.findFunc(t.model);
  if (!f || !f->isModel) {
    std::vector<std::string> models;
    for (const FuncDecl &g : m.funcs)
      if (g.isModel)
        models.push_back(g.name);
    diags.error(t.modelLoc, (f ? "'" + t.model + "' is a layer, not a model"
                               : "unknown model '" + t.model + "'") +
                                suggest(t.model, models));
    ok = false;
  }
  llvm::StringSet<> seen;
  std::vector<std::string> keys(std::begin(kKeys), std::end(kKeys));
  for (const TrainSetting &s : t.settings) {
    if (!seen.insert(s.key).second) {
      diags.error(s.loc, "'" + s.key + "' is set twice");
      ok = false;
      continue;
    }
    if (s.key == "data")
      ok &= data(s, c);
    else if (s.key == "batch" || s.key == "epochs" || s.key == "seed") {
      int64_t &field = s.key == "batch"    ? c.batch
                       : s.key == "epochs" ? c.epochs
                                           : c.seed;
      if (auto v = positiveInt(s, s.key == "seed" ? 0 : 1))
        field = *v;
      else
        ok = false;
    } else if (s.key == "optimizer")
      ok &= optimizer(s, c);
    else {
      diags.error(s.loc, "unknown train setting '" + s.key + "'" +
                             suggest(s.key, keys) +
                             " (settings: " + llvm::join(keys, ", ") + ")");
      ok = false;
    }
  }
  for (const char *required : {"data", "batch", "optimizer"})
    if (!seen.count(required)) {
      diags.error(t.loc,
                  "train block for '" + t.model + "' needs '" + required + "'");
      ok = false;
    }
  if (!ok)
    return std::nullopt;
  return c;
}

} // namespace

std::vector<TrainConfig> kiln::checkTrainBlocks(const Module &m,
                                                Diagnostics &diags) {
  std::vector<TrainConfig> out;
  llvm::StringSet<> trained;
  Checker checker(diags);
  for (const TrainDecl &t : m.trains) {
    if (!trained.insert(t.model).second) {
      diags.error(t.loc, "'" + t.model + "' has two train blocks");
      continue;
    }
    if (auto c = checker.check(m, t))
      out.push_back(std::move(*c));
  }
  return out;
}

void kiln::checkDataFits(const TrainConfig &c, const Graph &g,
                         Diagnostics &diags) {
  // fashion_mnist feeds two inputs: images (784 floats in [0, 1] per
  // example, any shape) and labels (i32, one per example).
  std::vector<Node *> inputs = g.leaves(Op::Input);
  auto fits = [&] {
    if (inputs.size() != 2)
      return false;
    const TensorType &x = inputs[0]->type, &y = inputs[1]->type;
    return x.dtype == DType::F32 && x.rank() >= 2 && y.dtype == DType::I32 &&
           y.shape == Shape{c.batch} && x.shape[0] == c.batch &&
           *numElements(x.shape) == c.batch * 784;
  };
  if (!fits()) {
    std::string got;
    for (Node *n : inputs)
      got += (got.empty() ? "" : ", ") + n->stringAttr("name") + ": " +
             n->type.str();
    diags.error(c.dataLoc, "fashion_mnist feeds (images f32[" +
                               llvm::Twine(c.batch) +
                               ", 784 values], labels "
                               "i32[" +
                               llvm::Twine(c.batch) + "]), but model '" +
                               c.model + "' takes (" + got + ")");
  }
}
