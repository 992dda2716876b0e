//===- Train.cpp - Train blocks -------------------------------------------===//
//
// Settings are constants: numbers, strings, true/false and calls such as
// adam(lr = 0.001). Optimizer arguments and defaults follow torch.optim
// (ir/Optimizers.cpp); schedules follow torch.optim.lr_scheduler.
//
//===----------------------------------------------------------------------===//
#include "frontend/Train.h"
#include "ir/Graph.h"
#include "ir/Printer.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"
#include <cmath>
#include <functional>

using namespace kiln;

namespace {

const char *const kKeys[] = {"data",  "batch",    "epochs", "optimizer",
                             "seed",  "schedule", "split",  "early_stop",
                             "mixup", "cutmix"};

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
  bool schedule(const TrainSetting &s, TrainConfig &c);
  /// A number in [lo, hi) (or [lo, hi] if `closed`).
  std::optional<double> fraction(const TrainSetting &s, double lo, double hi,
                                 bool closed);
  /// The keyword arguments of a call, checked against `allowed`: every key
  /// at most once, each value a string (strings) or a number.
  bool kwargs(const Expr &call, llvm::ArrayRef<std::string> allowed,
              bool strings, std::map<std::string, const Expr *> &out);
  /// A number, possibly negated, or true/false (1/0).
  std::optional<double> number(const Expr &e);
  Diagnostics &diags;
};

/// Why `e` is no number of a train block: it computes, or it is something
/// else altogether.
static std::string whyNotANumber(const Expr &e) {
  if (e.kind == ExprKind::Binary || e.kind == ExprKind::Call ||
      e.kind == ExprKind::Unary)
    return " written out (a train block does no arithmetic)";
  return "";
}

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

bool Checker::kwargs(const Expr &e, llvm::ArrayRef<std::string> allowed,
                     bool strings, std::map<std::string, const Expr *> &out) {
  for (size_t k = 0; k < e.kwargs.size(); ++k) {
    auto &[key, v] = e.kwargs[k];
    if (!llvm::is_contained(allowed, key)) {
      diags.error(e.kwargLocs[k], e.name + " has no argument '" + key + "'" +
                                      suggest(key, allowed) + " (it takes " +
                                      llvm::join(allowed, ", ") + ")");
      return false;
    }
    if (out.count(key)) {
      diags.error(e.kwargLocs[k], "'" + key + "' is given twice");
      return false;
    }
    if (strings ? v->kind != ExprKind::String : !number(*v)) {
      diags.error(v->range.Start,
                  "'" + key + "' must be a " + (strings ? "string" : "number"),
                  v->range);
      return false;
    }
    out[key] = v.get();
  }
  return true;
}

bool Checker::data(const TrainSetting &s, TrainConfig &c) {
  const Expr &e = *s.value;
  struct Source {
    const char *name;
    DataSource::Kind kind;
    std::vector<std::string> keys, required;
  };
  static const Source sources[] = {
      {"fashion_mnist", DataSource::FashionMnist, {"dir"}, {}},
      {"idx",
       DataSource::Idx,
       {"images", "labels", "test_images", "test_labels"},
       {"images", "labels"}},
      {"csv", DataSource::Csv, {"path", "label", "test"}, {"path", "label"}},
  };
  const Source *src = nullptr;
  for (const Source &x : sources)
    if (e.kind == ExprKind::Call && e.name == x.name)
      src = &x;
  if (!src) {
    diags.error(e.range.Start,
                "unknown data source; Kiln provides fashion_mnist(dir = "
                "\"...\"), idx(images = \"...\", labels = \"...\") and "
                "csv(\"FILE\", label = \"COLUMN\")",
                e.range);
    return false;
  }
  c.dataLoc = e.opLoc;
  c.data.kind = src->kind;
  // csv's path may come first, unnamed; the others take keywords only.
  std::map<std::string, const Expr *> args;
  if (!e.args.empty()) {
    if (src->kind != DataSource::Csv || e.args.size() > 1) {
      diags.error(e.args[0]->range.Start,
                  e.name + " takes keyword arguments (" +
                      llvm::join(src->keys, ", ") + ")");
      return false;
    }
    if (e.args[0]->kind != ExprKind::String) {
      diags.error(e.args[0]->range.Start, "the CSV file must be a string",
                  e.args[0]->range);
      return false;
    }
    args["path"] = e.args[0].get();
  }
  if (!kwargs(e, src->keys, /*strings=*/true, args))
    return false;
  for (const std::string &r : src->required)
    if (!args.count(r)) {
      diags.error(e.opLoc, e.name + " needs '" + r + "'");
      return false;
    }
  auto get = [&](const char *k) {
    return args.count(k) ? args[k]->name : std::string();
  };
  if (args.count("dir"))
    c.data.dir = get("dir");
  c.data.images = get("images");
  c.data.labels = get("labels");
  c.data.testImages = get("test_images");
  c.data.testLabels = get("test_labels");
  if (c.data.testImages.empty() != c.data.testLabels.empty()) {
    diags.error(e.opLoc, "idx needs both test_images and test_labels, or "
                         "neither");
    return false;
  }
  c.data.path = get("path");
  c.data.label = get("label");
  c.data.test = get("test");
  return true;
}

bool Checker::schedule(const TrainSetting &s, TrainConfig &c) {
  const Expr &e = *s.value;
  struct Kind {
    const char *name;
    Schedule::Kind kind;
    std::vector<std::string> keys;
  };
  static const Kind kinds[] = {{"step", Schedule::Step, {"every", "gamma"}},
                               {"cosine", Schedule::Cosine, {"warmup"}},
                               {"warmup", Schedule::Warmup, {"steps"}}};
  const Kind *k = nullptr;
  for (const Kind &x : kinds)
    if (e.kind == ExprKind::Call && e.name == x.name)
      k = &x;
  if (!k || !e.args.empty()) {
    diags.error(e.range.Start,
                k ? "schedule arguments are keywords"
                  : "unknown schedule; Kiln provides step(every = EPOCHS, "
                    "gamma = G), cosine(warmup = STEPS) and warmup(steps = "
                    "STEPS)",
                e.range);
    return false;
  }
  std::map<std::string, const Expr *> args;
  if (!kwargs(e, k->keys, /*strings=*/false, args))
    return false;
  c.schedule.kind = k->kind;
  auto count = [&](const char *key, int64_t min, int64_t &out) {
    if (!args.count(key))
      return true;
    const Expr &v = *args[key];
    if (v.kind != ExprKind::Int || v.intValue < min) {
      diags.error(v.range.Start,
                  "'" + llvm::Twine(key) + "' must be an integer of at least " +
                      llvm::Twine(min),
                  v.range);
      return false;
    }
    out = v.intValue;
    return true;
  };
  if (!count("every", 1, c.schedule.every) ||
      !count("warmup", 0, c.schedule.warmup) ||
      !count("steps", 1, c.schedule.warmup))
    return false;
  if (k->kind == Schedule::Warmup && !args.count("steps")) {
    diags.error(e.opLoc, "warmup needs 'steps'");
    return false;
  }
  if (args.count("gamma")) {
    double g = *number(*args["gamma"]);
    if (!(g > 0 && g <= 1)) {
      diags.error(args["gamma"]->range.Start, "'gamma' must be in (0, 1]",
                  args["gamma"]->range);
      return false;
    }
    c.schedule.gamma = g;
  }
  return true;
}

std::optional<double> Checker::fraction(const TrainSetting &s, double lo,
                                        double hi, bool closed) {
  const Expr &e = *s.value;
  auto v = number(e);
  bool ok = v && *v >= lo && (closed ? *v <= hi : *v < hi) &&
            e.kind != ExprKind::Name;
  if (!ok) {
    diags.error(e.range.Start,
                "'" + s.key + "' must be a number in [" +
                    llvm::formatv("{0}, {1}", lo, hi) + (closed ? "]" : ")") +
                    (v ? "" : whyNotANumber(e)),
                e.range);
    return std::nullopt;
  }
  return *v;
}

bool Checker::optimizer(const TrainSetting &s, TrainConfig &c) {
  const Expr &e = *s.value;
  std::vector<std::string> names;
  for (const OptimizerInfo &o : optimizerTable())
    names.push_back(o.name);
  const OptimizerInfo *info =
      e.kind == ExprKind::Call ? findOptimizer(e.name) : nullptr;
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
  c.optimizer.kind = info->name;
  std::vector<std::optional<double>> vals(info->args.size());
  auto set = [&](size_t i, const Expr &v) {
    auto x = number(v);
    if (!x) {
      diags.error(v.range.Start,
                  "'" + llvm::Twine(info->args[i].name) + "' must be a number" +
                      whyNotANumber(v),
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
    auto it = llvm::find_if(
        info->args, [&](const OptimizerArg &a) { return key == a.name; });
    if (it == info->args.end()) {
      std::vector<std::string> known;
      for (const OptimizerArg &a : info->args)
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
    c.optimizer.args[info->args[i].name] =
        vals[i].value_or(info->args[i].def.value_or(0));
  }
  // The same rules as the optimizer pass's options.
  if (auto err = c.optimizer.validate()) {
    diags.error(e.opLoc, llvm::toString(std::move(err)), e.range);
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
  if (f && f->isModel) {
    // What training needs of the model itself.
    std::function<bool(const Block &)> minimizes = [&](const Block &b) {
      return llvm::any_of(b, [&](const Stmt &s) {
        return s.kind == Stmt::Minimize ||
               (s.kind == Stmt::For && minimizes(s.body));
      });
    };
    if (!minimizes(f->body)) {
      diags.error(t.modelLoc, "model '" + t.model +
                                  "' minimizes nothing, so it cannot be "
                                  "trained (add 'minimize LOSS')");
      ok = false;
    }
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
    else if (s.key == "schedule")
      ok &= schedule(s, c);
    else if (s.key == "early_stop") {
      if (auto v = positiveInt(s, 1))
        c.earlyStop = *v;
      else
        ok = false;
    } else if (s.key == "split") {
      if (auto v = fraction(s, 0, 1, /*closed=*/false); v && *v > 0)
        c.split = *v;
      else {
        if (v)
          diags.error(s.value->range.Start, "'split' must be above 0",
                      s.value->range);
        ok = false;
      }
    } else if (s.key == "mixup" || s.key == "cutmix") {
      if (auto v = fraction(s, 0, 1e6, /*closed=*/false))
        (s.key == "mixup" ? c.mixup : c.cutmix) = *v;
      else
        ok = false;
    } else {
      diags.error(s.loc, "unknown train setting '" + s.key + "'" +
                             suggest(s.key, keys) +
                             " (settings: " + llvm::join(keys, ", ") + ")");
      ok = false;
    }
  }
  if (c.mixup > 0 && c.cutmix > 0) {
    diags.error(t.loc, "a train block takes mixup or cutmix, not both");
    ok = false;
  }
  if (c.earlyStop && c.split == 0 && c.data.kind != DataSource::FashionMnist &&
      c.data.testLabels.empty() && c.data.test.empty()) {
    diags.error(t.loc, "early_stop watches the validation loss, and this data "
                       "has no test split: set 'split'");
    ok = false;
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
  // A source feeds two inputs: examples (f32, any shape after the batch;
  // fashion_mnist's have 784 values in [0, 1]) and labels (i32, one per
  // example). The size of an idx or csv example is checked once the files
  // are read.
  std::vector<Node *> inputs = g.leaves(Op::Input);
  bool mnist = c.data.kind == DataSource::FashionMnist;
  auto fits = [&] {
    if (inputs.size() != 2)
      return false;
    const TensorType &x = inputs[0]->type, &y = inputs[1]->type;
    return x.dtype == DType::F32 && x.rank() >= 2 && y.dtype == DType::I32 &&
           y.shape == Shape{c.batch} && x.shape[0] == c.batch &&
           (!mnist || *numElements(x.shape) == c.batch * 784);
  };
  if (!fits()) {
    std::string got;
    for (Node *n : inputs)
      got += (got.empty() ? "" : ", ") + n->stringAttr("name") + ": " +
             n->type.str();
    const char *name = mnist                            ? "fashion_mnist"
                       : c.data.kind == DataSource::Idx ? "idx"
                                                        : "csv";
    diags.error(c.dataLoc, llvm::Twine(name) + " feeds (examples f32[" +
                               llvm::Twine(c.batch) +
                               (mnist ? ", 784 values]" : ", ...]") +
                               ", labels i32[" + llvm::Twine(c.batch) +
                               "]), but model '" + c.model + "' takes (" + got +
                               ")");
  }
}

std::string DataSource::str() const {
  switch (kind) {
  case FashionMnist:
    return "fashion_mnist(dir = \"" + dir + "\")";
  case Idx:
    return "idx(images = \"" + images + "\", labels = \"" + labels + "\"" +
           (testImages.empty()
                ? ""
                : ", test_images = \"" + testImages + "\", test_labels = \"" +
                      testLabels + "\"") +
           ")";
  case Csv:
    return "csv(\"" + path + "\", label = \"" + label + "\"" +
           (test.empty() ? "" : ", test = \"" + test + "\"") + ")";
  }
  return "";
}

double Schedule::at(double lr, int64_t step, int64_t total,
                    int64_t epoch) const {
  switch (kind) {
  case Constant:
    return lr;
  case Step:
    // StepLR, stepped once per epoch.
    return lr * std::pow(gamma, double(epoch / every));
  case Warmup:
    return lr * std::min(1.0, double(step) / double(warmup));
  case Cosine: {
    // A linear warm-up, then CosineAnnealingLR to 0 at the last step.
    if (step <= warmup)
      return lr * double(step) / double(std::max<int64_t>(warmup, 1));
    double span = double(std::max<int64_t>(total - warmup, 1));
    double t = std::min(1.0, double(step - warmup) / span);
    return lr * 0.5 * (1 + std::cos(M_PI * t));
  }
  }
  return lr;
}

std::string Schedule::str() const {
  switch (kind) {
  case Constant:
    return "constant";
  case Step:
    return "step(every = " + std::to_string(every) +
           ", gamma = " + formatFloat(gamma) + ")";
  case Cosine:
    return "cosine(warmup = " + std::to_string(warmup) + ")";
  case Warmup:
    return "warmup(steps = " + std::to_string(warmup) + ")";
  }
  return "";
}
