//===- Train.cpp - kiln train and kiln eval -------------------------------===//
//
// One training run:
//  1. Read the data and split off the validation examples (the test split,
//     or `split` of the training data, chosen by a seeded shuffle).
//  2. Lower the model for training at the batch size, run the training
//     pipeline (autodiff, the optimizer's update, tidying) and compile it;
//     the same for a last partial batch, whose size differs, and for the
//     evaluation graph. All of them are attached to one Session, so they
//     share the parameter, optimizer-state and batch-norm buffers.
//  3. Per step: gather the batch into the step's input buffers, mix it
//     (mixup, cutmix), set the optimizer's scalars for the step, run.
//  4. Per epoch: evaluate, write the metrics and the checkpoint.
// Every random choice is a function of (seed, epoch or step), and the
// compiled code gives the same bits for any thread count, so a checkpoint
// holds everything needed to continue bit-exactly.
//
//===----------------------------------------------------------------------===//
#include "tools/Train.h"
#include "codegen/JIT.h"
#include "ir/Printer.h"
#include "passes/Pipeline.h"
#include "runtime/Batches.h"
#include "runtime/Data.h"
#include "runtime/Gradients.h"
#include "runtime/Interpreter.h"
#include "runtime/Metrics.h"
#include "runtime/Session.h"
#include "tools/Flags.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/xxhash.h"
#include <chrono>
#include <nlohmann/json.hpp>
#include <unistd.h>

using namespace kiln;
using namespace kiln::flags;
using json = nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

//===-- Data -------------------------------------------------------------===//

/// Some examples of a dataset, by row.
struct Subset {
  const Dataset *data = nullptr;
  std::vector<int64_t> rows;
  size_t size() const { return rows.size(); }
};

/// The data of a run: what trains and what validates.
struct RunData {
  DataSplits splits;
  Subset train, valid;
  std::string validName; ///< "test" or "validation"
};

llvm::Expected<DataSplits> readData(const DataSource &src) {
  switch (src.kind) {
  case DataSource::FashionMnist:
    return loadFashionMnist(src.dir);
  case DataSource::Idx: {
    DataSplits s;
    auto train = readIdx(src.images, src.labels);
    if (!train)
      return train.takeError();
    s.train = std::move(*train);
    if (!src.testImages.empty()) {
      auto test = readIdx(src.testImages, src.testLabels);
      if (!test)
        return test.takeError();
      s.test = std::move(*test);
    }
    return std::move(s);
  }
  case DataSource::Csv: {
    DataSplits s;
    auto train = readCsv(src.path, src.label);
    if (!train)
      return train.takeError();
    s.train = std::move(*train);
    if (!src.test.empty()) {
      auto test = readCsv(src.test, src.label);
      if (!test)
        return test.takeError();
      s.test = std::move(*test);
    }
    return std::move(s);
  }
  }
  return makeError("unknown data source");
}

Subset allOf(const Dataset &d) {
  Subset s{&d, std::vector<int64_t>(d.size())};
  for (int64_t i = 0; i < d.size(); ++i)
    s.rows[i] = i;
  return s;
}

/// Splits the training data (a seeded shuffle: the last `share` validates)
/// or uses the test split.
void chooseValidation(RunData &d, const TrainConfig &c) {
  if (c.split > 0) {
    std::vector<int64_t> order =
        shuffled(d.splits.train.size(), c.seed, RngStream::Split, 0);
    size_t held = size_t(double(order.size()) * c.split);
    held = std::clamp<size_t>(held, 1, order.size() - 1);
    d.train = {&d.splits.train, {order.begin(), order.end() - held}};
    d.valid = {&d.splits.train, {order.end() - held, order.end()}};
    d.validName = "validation";
    return;
  }
  d.train = allOf(d.splits.train);
  if (d.splits.test) {
    d.valid = allOf(*d.splits.test);
    d.validName = "test";
  }
}

//===-- Steps ------------------------------------------------------------===//

/// A step attached to the session, with its inputs resolved once.
struct StepSlots {
  size_t index = 0;
  int64_t batch = 0;
  size_t x = 0, y = 0;
  int64_t partner = -1, lambda = -1; ///< mixup's inputs, or -1
  std::vector<size_t> scalars;       ///< the optimizer's, in order
  const Graph *graph = nullptr;      ///< for --check-numerics
};

/// The steps of one run, built on demand per batch size, over one Session.
class Steps {
public:
  Steps(ModelSource &m, JIT *jit) : model(m), jit(jit) {}

  llvm::Expected<StepSlots *> train(int64_t batch) {
    return get(trainSteps, batch, /*train=*/true);
  }
  llvm::Expected<StepSlots *> eval(int64_t batch) {
    return get(evalSteps, batch, /*train=*/false);
  }
  Session session;
  /// The lowered training graph at the full batch size (for its hash and
  /// initial values).
  std::unique_ptr<Graph> forward;

private:
  llvm::Expected<StepSlots *>
  get(std::map<int64_t, std::unique_ptr<StepSlots>> &cache, int64_t batch,
      bool train);

  ModelSource &model;
  JIT *jit;
  std::map<int64_t, std::unique_ptr<StepSlots>> trainSteps, evalSteps;
  std::vector<std::unique_ptr<Graph>> graphs;
};

llvm::Expected<StepSlots *>
Steps::get(std::map<int64_t, std::unique_ptr<StepSlots>> &cache,
           int64_t batch, bool train) {
  if (auto it = cache.find(batch); it != cache.end())
    return it->second.get();
  const TrainConfig &c = model.config;
  auto g = model.lower(batch, train);
  if (!g)
    return makeError("cannot lower the model at batch size " +
                     llvm::Twine(batch));
  std::vector<Node *> inputs = g->leaves(Op::Input);
  std::string xName = inputs[0]->stringAttr("name");
  std::string yName = inputs[1]->stringAttr("name");
  if (train && !forward)
    forward = model.lower(batch, true);
  if (train) {
    TrainingOptions opts;
    opts.optimizer = &c.optimizer;
    if (c.mixup > 0 || c.cutmix > 0)
      opts.mixLabels = yName;
    auto pipeline = trainingPipeline(opts);
    if (!pipeline)
      return pipeline.takeError();
    if (auto e = runPasses(*g, *pipeline, passOptions(), llvm::outs()))
      return std::move(e);
  } else if (!g->objective) {
    return makeError("@" + g->name + " minimizes nothing to evaluate");
  }
  std::unique_ptr<Step> step;
  if (jit) {
    auto compiled = jit->compile(*g);
    if (!compiled)
      return compiled.takeError();
    auto s = JITStep::create(*compiled);
    if (!s)
      return s.takeError();
    step = std::move(*s);
  } else {
    step = std::make_unique<InterpStep>(*g);
  }
  auto index = session.attach(std::move(step));
  if (!index)
    return index.takeError();
  auto slots = std::make_unique<StepSlots>();
  slots->index = *index;
  slots->batch = batch;
  slots->graph = g.get();
  auto resolve = [&](llvm::StringRef name) {
    return session.inputIndex(*index, name);
  };
  auto x = resolve(xName), y = resolve(yName);
  if (!x)
    return x.takeError();
  if (!y)
    return y.takeError();
  slots->x = *x;
  slots->y = *y;
  if (train) {
    if (c.mixup > 0 || c.cutmix > 0) {
      auto p = resolve("mixup.labels"), l = resolve("mixup.lambda");
      if (!p)
        return p.takeError();
      if (!l)
        return l.takeError();
      slots->partner = *p;
      slots->lambda = *l;
    }
    for (const std::string &s : c.optimizer.scalarNames()) {
      auto i = resolve(optimizerInputName(s));
      if (!i)
        return i.takeError();
      slots->scalars.push_back(*i);
    }
  }
  graphs.push_back(std::move(g));
  return (cache[batch] = std::move(slots)).get();
}

/// What the flags and the train block say one run does.
struct RunPlan {
  int64_t epochs = 1;
  std::optional<int64_t> maxSteps;
  bool shuffle = true;
  bool progress = false; ///< a progress bar on stderr
};

//===-- Evaluation -------------------------------------------------------===//

struct Score {
  double loss = NAN, accuracy = NAN;
};

/// The index of the largest of n scores (the first, on ties).
template <typename T> int64_t argmax(const T *v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best])
      best = i;
  return best;
}

/// Mean loss and accuracy over a subset, in order, in batches of `batch`
/// (the last one smaller). Accuracy needs class scores [B, C] as output.
llvm::Expected<Score> evaluate(Steps &steps, const Subset &s, int64_t batch) {
  Score score;
  if (s.size() == 0)
    return score;
  double lossSum = 0;
  int64_t correct = 0;
  bool scores = true;
  for (size_t begin = 0; begin < s.size(); begin += batch) {
    size_t n = std::min<size_t>(batch, s.size() - begin);
    auto slots = steps.eval(int64_t(n));
    if (!slots)
      return slots.takeError();
    StepSlots &st = **slots;
    llvm::ArrayRef<int64_t> rows(s.rows.data() + begin, n);
    gatherBatch(*s.data, rows,
                static_cast<float *>(steps.session.input(st.index, st.x)),
                static_cast<int32_t *>(steps.session.input(st.index, st.y)));
    if (auto e = steps.session.run(st.index, 0))
      return std::move(e);
    Step &step = steps.session.step(st.index);
    lossSum += step.objective() * double(n);
    const TensorType *out = step.outputType();
    scores &= out && out->rank() == 2 && out->shape[0] == int64_t(n) &&
              out->dtype == DType::F32;
    if (scores) {
      const float *o = static_cast<const float *>(step.output());
      const int32_t *y =
          static_cast<const int32_t *>(steps.session.input(st.index, st.y));
      int64_t classes = out->shape[1];
      for (size_t i = 0; i < n; ++i)
        correct += argmax(o + i * classes, classes) == y[i];
    }
  }
  score.loss = lossSum / double(s.size());
  if (scores)
    score.accuracy = double(correct) / double(s.size());
  return score;
}

//===-- Checkpoints ------------------------------------------------------===//

/// Where a run stands: everything a checkpoint restores besides tensors.
struct Progress {
  int64_t epoch = 0;          ///< epochs completed
  int64_t batchInEpoch = 0;   ///< batches of epoch `epoch` done
  double epochLossSum = 0;    ///< of those batches, sum of loss * size
  int64_t epochExamples = 0;
  double epochSeconds = 0; ///< of those batches (not in checkpoints)
  double bestValidLoss = INFINITY; ///< early stopping
  int64_t badEpochs = 0;
  std::vector<EpochMetrics> metrics;
};

/// The model's identity: a hash of its training graph lowered at batch
/// size 1 (the batch size is checked on its own), without source
/// locations (the same file under another path is the same model).
llvm::Expected<std::string> modelHash(const ModelSource &m) {
  auto g = m.lower(1, /*train=*/true);
  if (!g)
    return makeError("cannot lower the model at batch size 1");
  for (auto &n : g->nodes)
    n->loc = Location();
  std::string text;
  llvm::raw_string_ostream os(text);
  printGraph(*g, os);
  return llvm::utohexstr(llvm::xxh3_64bits(text), /*LowerCase=*/true);
}

/// The deterministic columns of the metrics (timings would make the
/// checkpoint's bytes depend on the machine and the thread count).
json metricsJson(llvm::ArrayRef<EpochMetrics> rows) {
  json a = json::array();
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  for (const EpochMetrics &m : rows)
    a.push_back({m.epoch, num(m.trainLoss), num(m.testLoss),
                 num(m.testAccuracy)});
  return a;
}

std::vector<EpochMetrics> metricsFromJson(const json &a) {
  std::vector<EpochMetrics> rows;
  auto num = [](const json &v) {
    return v.is_number() ? v.get<double>() : double(NAN);
  };
  for (const json &r : a)
    if (r.is_array() && r.size() == 4)
      rows.push_back({r[0].get<int64_t>(), num(r[1]), num(r[2]), num(r[3])});
  return rows;
}

llvm::Error saveCheckpoint(llvm::StringRef path, Steps &steps,
                           const ModelSource &m, const Progress &p,
                           int64_t batch) {
  const TrainConfig &c = m.config;
  Metadata meta;
  meta["format"] = "kiln-checkpoint-1";
  meta["model"] = c.model;
  auto hash = modelHash(m);
  if (!hash)
    return hash.takeError();
  meta["model_hash"] = *hash;
  meta["epoch"] = std::to_string(p.epoch);
  meta["step"] = std::to_string(steps.session.stepCount);
  meta["batch"] = std::to_string(batch);
  json rng = {{"shuffle", {{"seed", c.seed}, {"epoch", p.epoch}}},
              {"dropout", {{"seed", c.seed}, {"step", steps.session.stepCount}}},
              {"mix", {{"seed", c.seed}, {"step", steps.session.stepCount}}},
              {"split", {{"seed", c.seed}, {"share", c.split}}}};
  meta["rng"] = rng.dump();
  json data = {{"source", c.data.str()},
               {"shuffle", bool(shuffle)},
               {"epoch", p.epoch},
               {"batch_in_epoch", p.batchInEpoch},
               {"epoch_loss_sum", p.epochLossSum},
               {"epoch_examples", p.epochExamples}};
  meta["data_position"] = data.dump();
  json opt = {{"kind", c.optimizer.kind}};
  for (auto &[k, v] : c.optimizer.args)
    opt[k] = v;
  meta["optimizer"] = opt.dump();
  meta["schedule"] = c.schedule.str();
  json early = {{"patience", c.earlyStop}, {"bad_epochs", p.badEpochs}};
  if (std::isfinite(p.bestValidLoss))
    early["best_loss"] = p.bestValidLoss;
  meta["early_stop"] = early.dump();
  meta["metrics"] = metricsJson(p.metrics).dump();
  return writeSafetensors(path, steps.session.snapshot(), meta);
}

/// Reads a checkpoint into the session and `p`; errors say what differs.
llvm::Error loadCheckpoint(llvm::StringRef path, Steps &steps,
                           const ModelSource &m, Progress &p, int64_t batch,
                           bool forResume) {
  auto file = readSafetensorsFile(path);
  if (!file)
    return file.takeError();
  const Metadata &meta = file->metadata;
  auto field = [&](const char *k) -> llvm::Expected<std::string> {
    auto it = meta.find(k);
    if (it == meta.end())
      return makeError(path + ": not a Kiln checkpoint (no '" + k +
                       "' in __metadata__)");
    return it->second;
  };
  auto format = field("format");
  if (!format)
    return format.takeError();
  if (*format != "kiln-checkpoint-1")
    return makeError(path + ": unknown checkpoint format '" + *format + "'");
  // Names and shapes first: they say the most about a different model.
  auto model = field("model");
  if (!model)
    return model.takeError();
  if (auto e = steps.session.load(file->tensors, /*partial=*/!forResume)) {
    return makeError(path + ": the checkpoint (of model '" + *model +
                     "') does not fit model '" + m.config.model +
                     "': " + llvm::toString(std::move(e)));
  }
  // Evaluation needs every parameter and statistic it reads.
  for (const auto &e : steps.session.store())
    if (!file->tensors.count(e->name))
      return makeError(path + ": the checkpoint has no '" + e->name + "'");
  auto hash = field("model_hash");
  if (!hash)
    return hash.takeError();
  auto ours = modelHash(m);
  if (!ours)
    return ours.takeError();
  if (*hash != *ours) {
    if (forResume)
      return makeError(path + ": the checkpoint's parameters fit, but it was "
                              "written for a different model (its hash "
                              "differs), so resuming would not continue the "
                              "same training");
    llvm::errs() << "kiln: warning: " << path
                 << ": the model changed since this checkpoint was written\n";
  }
  if (!forResume)
    return llvm::Error::success();
  try {
    auto b = field("batch");
    if (!b)
      return b.takeError();
    if (std::stoll(*b) != batch)
      return makeError(path + ": the checkpoint was trained with batch " + *b +
                       "; resume with --batch " + *b);
    json opt = json::parse(*field("optimizer"));
    if (opt["kind"] != m.config.optimizer.kind)
      return makeError(path + ": the checkpoint's optimizer is " +
                       opt["kind"].get<std::string>() + ", the model's is " +
                       m.config.optimizer.kind);
    json pos = json::parse(*field("data_position"));
    p.epoch = pos.at("epoch").get<int64_t>();
    p.batchInEpoch = pos.at("batch_in_epoch").get<int64_t>();
    p.epochLossSum = pos.at("epoch_loss_sum").get<double>();
    p.epochExamples = pos.at("epoch_examples").get<int64_t>();
    if (pos.at("shuffle").get<bool>() != bool(shuffle))
      return makeError(path + ": the checkpoint was trained with --shuffle=" +
                       (shuffle ? "false" : "true") + "; resume with it");
    steps.session.stepCount = std::stoll(*field("step"));
    json early = json::parse(*field("early_stop"));
    p.badEpochs = early.at("bad_epochs").get<int64_t>();
    if (early.contains("best_loss"))
      p.bestValidLoss = early["best_loss"].get<double>();
    p.metrics = metricsFromJson(json::parse(*field("metrics")));
  } catch (const std::exception &e) {
    return makeError(path + ": malformed checkpoint metadata: " + e.what());
  }
  return llvm::Error::success();
}

//===-- Numerics ---------------------------------------------------------===//

/// "FILE:LINE:COL: " of a node, or "".
std::string where(const Node &n) {
  if (!n.loc.isKnown())
    return "";
  return (n.loc.file + ":" + llvm::Twine(n.loc.line) + ":" +
          llvm::Twine(n.loc.col) + ": ")
      .str();
}

bool allFinite(const Tensor &t) {
  if (!isFloat(t.dtype()))
    return true;
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(t.at(i)))
      return false;
  return true;
}

/// Re-runs a step that gave a non-finite loss in the interpreter, from the
/// values before it, and names the first op whose result is not finite
/// although its operands are.
std::string findNonFinite(const StepSlots &st, const TensorMap &before,
                          Session &session, uint64_t seed, uint64_t step) {
  const Graph &g = *st.graph;
  llvm::StringMap<Tensor> leaves;
  for (auto &[name, t] : before)
    leaves[name] = t;
  Step &s = session.step(st.index);
  for (size_t i = 0; i < s.leaves().size(); ++i)
    if (s.leaves()[i].kind == Op::Input) {
      Tensor t(s.leaves()[i].type.dtype, s.leaves()[i].type.shape);
      std::memcpy(t.raw(), session.input(st.index, i), t.nbytes());
      leaves[s.leaves()[i].name] = std::move(t);
    }
  InterpOptions opts;
  opts.seed = seed;
  opts.step = step;
  auto values = interpret(g, leaves, opts);
  if (!values)
    return " (the interpreter could not re-run the step: " +
           llvm::toString(values.takeError()) + ")";
  llvm::DenseMap<const Node *, size_t> index;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    index[g.nodes[i].get()] = i;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = *g.nodes[i];
    if (allFinite((*values)[i]))
      continue;
    std::string kind = n.info().flags & OpFlags::Leaf
                           ? n.info().mnemonic.str() + " '" +
                                 n.stringAttr("name") + "'"
                           : "'" + n.info().mnemonic.str() + "'";
    return "\n" + where(n) + "note: the first non-finite value is " + kind +
           " (%" + std::to_string(i) + " of the training graph, " +
           n.type.str() + ")";
  }
  return "\nnote: the reference interpreter computes this step with finite "
         "values; the compiled code differs from it";
}

//===-- Progress ---------------------------------------------------------===//

std::string clock(double seconds) {
  int64_t s = int64_t(seconds + 0.5);
  return s >= 3600 ? llvm::formatv("{0}:{1:2}:{2:2}", s / 3600, s / 60 % 60,
                                   s % 60)
                         .str()
                   : llvm::formatv("{0}:{1:2}", s / 60, s % 60).str();
}

class ProgressBar {
public:
  explicit ProgressBar(bool on) : on(on) {}
  void update(int64_t epoch, int64_t epochs, int64_t batch, int64_t batches,
              double loss, double imagesPerSecond, double eta) {
    if (!on)
      return;
    auto now = Clock::now();
    if (batch != batches && now - last < std::chrono::milliseconds(100))
      return;
    last = now;
    const int width = 24;
    int filled = int(width * batch / std::max<int64_t>(batches, 1));
    std::string bar(filled, '=');
    if (filled < width)
      bar += '>' + std::string(width - filled - 1, ' ');
    llvm::errs() << llvm::format("\r\x1b[2Kepoch %lld/%lld [%s] %lld/%lld  "
                                 "loss %.4f  %.0f img/s  ETA %s",
                                 (long long)epoch, (long long)epochs,
                                 bar.c_str(), (long long)batch,
                                 (long long)batches, loss, imagesPerSecond,
                                 clock(eta).c_str());
  }
  void clear() {
    if (on)
      llvm::errs() << "\r\x1b[2K";
  }

private:
  bool on;
  Clock::time_point last{};
};

double median(std::vector<double> v) {
  if (v.empty())
    return NAN;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string fmt(double v, const char *spec = "%.4f") {
  if (!std::isfinite(v))
    return "n/a";
  return llvm::formatv("{0}", llvm::format(spec, v)).str();
}

//===-- Training ---------------------------------------------------------===//

class Trainer {
public:
  Trainer(ModelSource &m, RunData &data, JIT *jit, const RunPlan &plan)
      : m(m), c(m.config), data(data), steps(m, jit), plan(plan),
        bar(plan.progress) {}

  /// Builds the steps and sets the starting values (initialisers, --init
  /// or a checkpoint).
  llvm::Error start(bool resumeFrom);
  /// Trains until the plan ends; the final validation score.
  llvm::Expected<Score> run();
  Progress progress;

private:
  llvm::Error trainStep(const std::vector<int64_t> &order, int64_t b,
                        int64_t batches, int64_t epoch);
  llvm::Error endEpoch(int64_t epoch, double seconds,
                       std::vector<double> &stepTimes, Score &score,
                       bool &stop);
  llvm::Error writeOutputs();

  ModelSource &m;
  const TrainConfig &c;
  RunData &data;
  Steps steps;
  RunPlan plan;
  ProgressBar bar;
  int64_t examplesPerEpoch = 0;
  std::vector<int64_t> cutmixShape; ///< [C, H, W], for cutmix
};

llvm::Error Trainer::start(bool resumeFrom) {
  auto full = steps.train(c.batch);
  if (!full)
    return full.takeError();
  // The data's examples must fill the model's input.
  const Step::Leaf &x =
      steps.session.step((*full)->index).leaves()[(*full)->x];
  int64_t perExample = *numElements(x.type.shape) / c.batch;
  const Dataset &train = *data.train.data;
  if (perExample != train.exampleSize())
    return makeError(c.data.str() + " has " +
                     llvm::Twine(train.exampleSize()) +
                     " values per example, but model '" + c.model +
                     "' takes " + x.type.str() + " (" +
                     llvm::Twine(perExample) + " per example)");
  if (data.valid.data && data.valid.data->exampleSize() != perExample)
    return makeError(c.data.str() + ": the test split has " +
                     llvm::Twine(data.valid.data->exampleSize()) +
                     " values per example, the training split " +
                     llvm::Twine(perExample));
  if (c.cutmix > 0) {
    // Images: [C, H, W] from the model's input, else [1, H, W] from the
    // data's.
    llvm::ArrayRef<int64_t> in = x.type.shape;
    llvm::ArrayRef<int64_t> img = train.images.shape();
    if (in.size() == 4)
      cutmixShape = {in[1], in[2], in[3]};
    else if (img.size() == 3)
      cutmixShape = {1, img[1], img[2]};
    else
      return makeError("cutmix pastes boxes of images, but model '" + c.model +
                       "' takes " + x.type.str() + " and the data has no "
                                                   "image shape");
  }
  // Compile every step the run takes now, so epochs time only training.
  int64_t trainRem = int64_t(data.train.size()) % c.batch;
  int64_t validRem = int64_t(data.valid.size()) % c.batch;
  std::vector<std::pair<bool, int64_t>> more;
  if (trainRem)
    more.push_back({true, trainRem});
  if (int64_t(data.valid.size()) >= c.batch)
    more.push_back({false, c.batch});
  if (validRem)
    more.push_back({false, validRem});
  for (auto [train, n] : more)
    if (auto s = train ? steps.train(n) : steps.eval(n); !s)
      return s.takeError();
  // Initial values, for every parameter and state the steps know.
  if (auto e = steps.session.load(initialParams(*steps.forward, c.seed),
                                  /*partial=*/true))
    return e;
  if (resumeFrom) {
    if (auto e = loadCheckpoint(checkpoint, steps, m, progress, c.batch,
                                /*forResume=*/true))
      return e;
    // Timings are not in the checkpoint; the earlier metrics file has them.
    if (metricsFile.empty() || !llvm::sys::fs::exists(metricsFile))
      return llvm::Error::success();
    auto old = readMetricsCsv(metricsFile);
    if (!old)
      return old.takeError();
    for (EpochMetrics &row : progress.metrics)
      for (const EpochMetrics &o : *old)
        if (o.epoch == row.epoch) {
          row.seconds = o.seconds;
          row.msPerStep = o.msPerStep;
        }
    return llvm::Error::success();
  }
  if (!initFile.empty()) {
    auto params = readSafetensors(initFile);
    if (!params)
      return params.takeError();
    std::vector<std::string> missing;
    for (const auto &e : steps.session.store())
      if (e->kind == Op::Param && !params->count(e->name))
        missing.push_back("'" + e->name + "' " + e->type.str());
    if (!missing.empty())
      return makeError(initFile + " lacks parameters of model '" + c.model +
                       "': " + llvm::join(missing, ", "));
    if (auto e = steps.session.load(*params, /*partial=*/true))
      return makeError(initFile + ": " + llvm::toString(std::move(e)));
    for (auto &[name, t] : *params)
      if (!steps.session.find(name))
        return makeError(initFile + ": '" + name +
                         "' is not a parameter of model '" + c.model + "'");
  }
  return llvm::Error::success();
}

llvm::Error Trainer::trainStep(const std::vector<int64_t> &order, int64_t b,
                               int64_t batches, int64_t epoch) {
  size_t begin = size_t(b) * c.batch;
  size_t n = std::min<size_t>(c.batch, order.size() - begin);
  auto slots = steps.train(int64_t(n));
  if (!slots)
    return slots.takeError();
  StepSlots &st = **slots;
  Session &s = steps.session;
  float *x = static_cast<float *>(s.input(st.index, st.x));
  int32_t *y = static_cast<int32_t *>(s.input(st.index, st.y));
  gatherBatch(*data.train.data, llvm::ArrayRef<int64_t>(&order[begin], n), x,
              y);
  int64_t t = s.stepCount + 1;
  if (st.partner >= 0) {
    Rng rng(c.seed, RngStream::Mix, uint64_t(t));
    int64_t size = data.train.data->exampleSize();
    Mix mix = c.mixup > 0
                  ? mixupBatch(x, y, int64_t(n), size, c.mixup, rng)
                  : cutmixBatch(x, y, int64_t(n), cutmixShape[0],
                                cutmixShape[1], cutmixShape[2], c.cutmix, rng);
    std::memcpy(s.input(st.index, st.partner), mix.partnerLabels.data(),
                n * sizeof(int32_t));
    *static_cast<float *>(s.input(st.index, st.lambda)) = float(mix.lambda);
  }
  int64_t total = plan.epochs * batches;
  double rate = c.schedule.at(c.optimizer.arg("lr"), t, total, epoch);
  std::vector<double> values = c.optimizer.scalars(rate, t);
  for (size_t i = 0; i < values.size(); ++i)
    *static_cast<float *>(s.input(st.index, st.scalars[i])) = float(values[i]);

  TensorMap before;
  if (checkNumerics)
    before = s.snapshot();
  s.stepCount = t;
  if (auto e = s.run(st.index, c.seed))
    return makeError("step " + llvm::Twine(t) + ": " +
                     llvm::toString(std::move(e)));
  double loss = s.step(st.index).objective();
  if (!std::isfinite(loss)) {
    std::string msg = llvm::formatv("step {0} (epoch {1}, batch {2} of {3}): "
                                    "the loss is {4}",
                                    t, epoch + 1, b + 1, batches, loss)
                          .str();
    if (checkNumerics)
      msg += findNonFinite(st, before, s, c.seed, uint64_t(t));
    else
      msg += "; --check-numerics names the first op that produced it";
    return makeError(msg);
  }
  progress.epochLossSum += loss * double(n);
  progress.epochExamples += int64_t(n);
  return llvm::Error::success();
}

llvm::Error Trainer::writeOutputs() {
  if (!metricsFile.empty())
    if (auto e = writeMetricsCsv(metricsFile, progress.metrics))
      return e;
  if (!plotFile.empty())
    if (auto e = plotMetrics(plotFile, progress.metrics,
                             "kiln train " + m.path + " (" + c.model + ")"))
      return e;
  return llvm::Error::success();
}

llvm::Expected<Score> Trainer::run() {
  const int64_t batches = (int64_t(data.train.size()) + c.batch - 1) / c.batch;
  Score score;
  bool stop = false;
  for (int64_t epoch = progress.epoch; epoch < plan.epochs && !stop;
       ++epoch) {
    std::vector<int64_t> order = data.train.rows;
    if (plan.shuffle) {
      std::vector<int64_t> perm =
          shuffled(int64_t(order.size()), c.seed, RngStream::Shuffle, epoch);
      for (size_t i = 0; i < perm.size(); ++i)
        order[i] = data.train.rows[perm[i]];
    }
    auto start = Clock::now();
    double carried = progress.epochSeconds;
    std::vector<double> stepTimes;
    for (int64_t b = progress.batchInEpoch; b < batches; ++b) {
      auto t0 = Clock::now();
      if (auto e = trainStep(order, b, batches, epoch))
        return std::move(e);
      stepTimes.push_back(secondsSince(t0));
      progress.batchInEpoch = b + 1;
      double elapsed = secondsSince(start);
      double rate = double(progress.epochExamples) /
                    std::max(1e-9, elapsed + carried);
      double eta = (elapsed / double(stepTimes.size())) *
                   double(batches - b - 1);
      bar.update(epoch + 1, plan.epochs, b + 1, batches,
                 progress.epochLossSum / double(progress.epochExamples), rate,
                 eta);
      if (plan.maxSteps && steps.session.stepCount >= *plan.maxSteps &&
          b + 1 < batches) {
        // Stopped inside an epoch: keep the position for --resume.
        bar.clear();
        progress.epochSeconds = carried + secondsSince(start);
        llvm::outs() << "stopped after step " << steps.session.stepCount
                     << " (epoch " << epoch + 1 << ", batch " << b + 1
                     << " of " << batches << ")\n";
        if (!checkpoint.empty())
          if (auto e = saveCheckpoint(checkpoint, steps, m, progress, c.batch))
            return std::move(e);
        if (auto e = writeOutputs())
          return std::move(e);
        return score;
      }
    }
    bar.clear();
    if (auto e = endEpoch(epoch, carried + secondsSince(start), stepTimes,
                          score, stop))
      return std::move(e);
    if (plan.maxSteps && steps.session.stepCount >= *plan.maxSteps &&
        epoch + 1 < plan.epochs) {
      llvm::outs() << "stopped after step " << steps.session.stepCount
                   << " (the end of epoch " << epoch + 1 << ")\n";
      break;
    }
  }
  if (!std::isfinite(score.loss) && !progress.metrics.empty()) {
    score.loss = progress.metrics.back().testLoss;
    score.accuracy = progress.metrics.back().testAccuracy;
  }
  return score;
}

llvm::Error Trainer::endEpoch(int64_t epoch, double seconds,
                              std::vector<double> &stepTimes, Score &score,
                              bool &stop) {
  EpochMetrics row;
  row.epoch = epoch + 1;
  row.trainLoss = progress.epochLossSum / double(progress.epochExamples);
  row.seconds = seconds;
  // The median after a short warm-up (the first steps page memory in).
  size_t warm = std::min<size_t>(5, stepTimes.size() / 10);
  row.msPerStep =
      1e3 * median(std::vector<double>(stepTimes.begin() + warm,
                                       stepTimes.end()));
  if (data.valid.size()) {
    auto s = evaluate(steps, data.valid, c.batch);
    if (!s)
      return s.takeError();
    score = *s;
    row.testLoss = s->loss;
    row.testAccuracy = s->accuracy;
  }
  progress.metrics.push_back(row);
  llvm::outs() << llvm::formatv(
      "epoch {0}/{1}: train loss {2}, {3} loss {4}, {3} accuracy {5}, "
      "{6} s, {7} ms/step\n",
      epoch + 1, plan.epochs, fmt(row.trainLoss),
      data.validName.empty() ? "test" : data.validName, fmt(row.testLoss),
      fmt(row.testAccuracy), fmt(row.seconds, "%.1f"),
      fmt(row.msPerStep, "%.3f"));
  llvm::outs().flush();
  progress.epoch = epoch + 1;
  progress.batchInEpoch = 0;
  progress.epochLossSum = 0;
  progress.epochExamples = 0;
  progress.epochSeconds = 0;
  if (c.earlyStop && std::isfinite(row.testLoss)) {
    if (row.testLoss < progress.bestValidLoss) {
      progress.bestValidLoss = row.testLoss;
      progress.badEpochs = 0;
    } else if (++progress.badEpochs >= c.earlyStop) {
      llvm::outs() << llvm::formatv(
          "early stop: the {0} loss has not improved for {1} epochs (best "
          "{2})\n",
          data.validName, progress.badEpochs, fmt(progress.bestValidLoss));
      stop = true;
    }
  }
  if (!checkpoint.empty())
    if (auto e = saveCheckpoint(checkpoint, steps, m, progress, c.batch))
      return e;
  return writeOutputs();
}

llvm::Expected<std::unique_ptr<JIT>> makeTrainJIT() {
  JITOptions opts;
  opts.threads = threads;
  return JIT::create(opts);
}

/// Reads the data and checks it against the model's labels.
llvm::Expected<std::unique_ptr<RunData>> loadRunData(const TrainConfig &c) {
  auto splits = readData(c.data);
  if (!splits)
    return splits.takeError();
  auto d = std::make_unique<RunData>();
  d->splits = std::move(*splits);
  if (d->splits.train.size() < 2)
    return makeError(c.data.str() + " has fewer than 2 examples");
  chooseValidation(*d, c);
  return std::move(d);
}

} // namespace

int kiln::runTrainCommand(ModelSource &m) {
  TrainConfig &c = m.config;
  auto data = loadRunData(c);
  if (!data)
    return fail(llvm::toString(data.takeError()));
  std::unique_ptr<JIT> jit;
  if (backend == Backend::JIT) {
    auto j = makeTrainJIT();
    if (!j)
      return fail(llvm::toString(j.takeError()));
    jit = std::move(*j);
  }
  RunPlan plan;
  plan.epochs = c.epochs;
  plan.shuffle = shuffle;
  plan.progress = llvm::sys::Process::StandardErrIsDisplayed();
  if (maxSteps.getNumOccurrences())
    plan.maxSteps = maxSteps;
  llvm::outs() << "training " << c.model << " on " << c.data.str() << ": "
               << (*data)->train.size() << " examples, "
               << ((*data)->valid.size()
                       ? std::to_string((*data)->valid.size()) + " " +
                             (*data)->validName
                       : std::string("no validation"))
               << "; batch " << c.batch << ", " << c.optimizer.str()
               << (c.schedule.kind != Schedule::Constant
                       ? ", schedule " + c.schedule.str()
                       : std::string())
               << "\n";

  if (kfold.getNumOccurrences()) {
    // Each fold trains a fresh model on the other folds.
    RunData &all = **data;
    std::vector<int64_t> order =
        shuffled(all.splits.train.size(), c.seed, RngStream::Split, 1);
    if (int64_t(order.size()) < kfold)
      return fail(llvm::formatv("--kfold {0}: the data has only {1} examples",
                                kfold, order.size()));
    std::vector<double> accuracies;
    for (int64_t k = 0; k < kfold; ++k) {
      size_t lo = order.size() * k / kfold, hi = order.size() * (k + 1) / kfold;
      RunData fold; // its subsets are rows of all's training data
      fold.train.data = fold.valid.data = &all.splits.train;
      fold.validName = "fold " + std::to_string(k + 1);
      for (size_t i = 0; i < order.size(); ++i)
        (i >= lo && i < hi ? fold.valid : fold.train).rows.push_back(order[i]);
      llvm::outs() << "fold " << k + 1 << "/" << kfold << ": "
                   << fold.train.size() << " training, " << fold.valid.size()
                   << " validation examples\n";
      Trainer t(m, fold, jit.get(), plan);
      llvm::Error e = t.start(false);
      llvm::Expected<Score> s = e ? llvm::Expected<Score>(std::move(e))
                                  : t.run();
      if (!s)
        return fail(llvm::toString(s.takeError()));
      accuracies.push_back(s->accuracy);
    }
    double mean = 0, var = 0;
    for (double a : accuracies)
      mean += a / double(accuracies.size());
    for (double a : accuracies)
      var += (a - mean) * (a - mean) / double(accuracies.size());
    llvm::outs() << llvm::formatv("{0}-fold accuracy: {1} +- {2} (folds: ",
                                  kfold, fmt(mean), fmt(std::sqrt(var)));
    for (size_t i = 0; i < accuracies.size(); ++i)
      llvm::outs() << (i ? ", " : "") << fmt(accuracies[i]);
    llvm::outs() << ")\n";
    return 0;
  }

  Trainer t(m, **data, jit.get(), plan);
  if (auto e = t.start(resume))
    return fail(llvm::toString(std::move(e)));
  if (resume && t.progress.epoch >= plan.epochs)
    return fail(llvm::formatv("{0} already holds {1} epochs; ask for more "
                              "with --epochs",
                              checkpoint, t.progress.epoch)
                    .str());
  auto score = t.run();
  if (!score)
    return fail(llvm::toString(score.takeError()));
  return 0;
}

int kiln::runEvalCommand(ModelSource &m) {
  TrainConfig &c = m.config;
  auto data = loadRunData(c);
  if (!data)
    return fail(llvm::toString(data.takeError()));
  if (!(*data)->valid.size())
    return fail(c.data.str() + " has no test split, and the train block sets "
                               "no 'split' to validate on");
  std::unique_ptr<JIT> jit;
  if (backend == Backend::JIT) {
    auto j = makeTrainJIT();
    if (!j)
      return fail(llvm::toString(j.takeError()));
    jit = std::move(*j);
  }
  Steps steps(m, jit.get());
  steps.forward = m.lower(c.batch, /*train=*/true);
  if (!steps.forward)
    return 1;
  auto first = steps.eval(
      std::min<int64_t>(c.batch, int64_t((*data)->valid.size())));
  if (!first)
    return fail(llvm::toString(first.takeError()));
  Progress p;
  if (auto e = loadCheckpoint(checkpoint, steps, m, p, c.batch,
                              /*forResume=*/false))
    return fail(llvm::toString(std::move(e)));
  // The remainder step binds to the values just loaded.
  auto score = evaluate(steps, (*data)->valid, c.batch);
  if (!score)
    return fail(llvm::toString(score.takeError()));
  llvm::outs() << llvm::formatv("{0} loss {1}, {0} accuracy {2} ({3} "
                                "examples)\n",
                                (*data)->validName, fmt(score->loss),
                                fmt(score->accuracy), (*data)->valid.size());
  return 0;
}
