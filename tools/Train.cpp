//===- Train.cpp - kiln train and kiln eval -------------------------------===//
//
// One training run:
//  1. Read the data and choose the validation examples (TrainSteps.cpp).
//  2. Compile every step the run takes (the training step at the batch
//     size and at the last partial batch's, the evaluation steps) into one
//     Session, so they share the parameter, optimizer-state and batch-norm
//     buffers; set the starting values (initialisers, --init, a checkpoint).
//  3. Per step: gather the batch into the step's input buffers, mix it
//     (mixup, cutmix), set the optimizer's scalars for the step, run.
//  4. Per epoch: evaluate, write the metrics and the checkpoint.
// Every random choice is a function of (seed, epoch or step), and the
// compiled code gives the same bits for any thread count, so a checkpoint
// holds everything needed to continue bit-exactly.
//
//===----------------------------------------------------------------------===//
#include "tools/Train.h"
#include "runtime/Batches.h"
#include "runtime/Gradients.h"
#include "runtime/Interpreter.h"
#include "tools/Checkpoint.h"
#include "tools/Flags.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include <chrono>
#include <nlohmann/json.hpp>

using namespace kiln;
using namespace kiln::train;
using namespace kiln::flags;

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// What the flags and the train block say one run does.
struct RunPlan {
  int64_t epochs = 1;
  std::optional<int64_t> maxSteps;
  bool shuffle = true;
  bool progress = false; ///< a progress bar on stderr
  bool checkNumerics = false;
  std::string checkpoint; ///< written after every epoch, or empty
  std::string metrics, plot, init;
};

//===-- Numerics ---------------------------------------------------------===//

/// "FILE:LINE:COL: " of a node, or "".
std::string where(const Node &n) {
  if (!n.loc.isKnown())
    return "";
  return n.loc.str() + ": ";
}

bool allFinite(const void *data, const TensorType &type) {
  if (type.dtype != DType::F32)
    return true;
  const float *f = static_cast<const float *>(data);
  int64_t n = *numElements(type.shape);
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(f[i]))
      return false;
  return true;
}

bool allFinite(const Tensor &t) {
  if (!isFloat(t.dtype()))
    return true;
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(t.at(i)))
      return false;
  return true;
}

/// Re-runs a step in the interpreter from the values before it, over every
/// node, and names the first op whose value is not finite.
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
    return "\nnote: the interpreter could not re-run the step: " +
           llvm::toString(values.takeError());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = *g.nodes[i];
    if (allFinite((*values)[i]))
      continue;
    std::string kind =
        n.info().flags & OpFlags::Leaf
            ? n.info().mnemonic.str() + " '" + n.stringAttr("name") + "'"
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
  return s >= 3600
             ? llvm::formatv("{0}:{1:2}:{2:2}", s / 3600, s / 60 % 60, s % 60)
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
    llvm::errs() << llvm::format(
        "\r\x1b[2Kepoch %lld/%lld [%s] %lld/%lld  "
        "loss %.4f  %.0f img/s  ETA %s",
        (long long)epoch, (long long)epochs, bar.c_str(), (long long)batch,
        (long long)batches, loss, imagesPerSecond, clock(eta).c_str());
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
  Trainer(const ModelSource &m, RunData &data, JIT *jit, const RunPlan &plan)
      : m(m), c(m.config), data(data), steps(m, jit), plan(plan),
        bar(plan.progress) {}

  /// Compiles the steps and sets the starting values (initialisers, --init
  /// or, with `resume`, the checkpoint).
  llvm::Error start(bool resume);
  /// Trains until the plan ends; the final validation score.
  llvm::Expected<Score> run();
  Progress progress;

private:
  int64_t batchesPerEpoch() const {
    return (int64_t(data.train.size()) + c.batch - 1) / c.batch;
  }
  llvm::Error checkLabels(const Graph &g);
  llvm::Error loadInit();
  llvm::Error trainStep(const std::vector<int64_t> &order, int64_t b,
                        int64_t epoch);
  llvm::Error endEpoch(int64_t epoch, double seconds,
                       std::vector<double> &stepTimes, Score &score,
                       bool &stop);
  llvm::Error save();
  llvm::Error writeOutputs();

  const ModelSource &m;
  const TrainConfig &c;
  RunData &data;
  Steps steps;
  RunPlan plan;
  ProgressBar bar;
  std::vector<std::string> settings;
  std::string hash;
  std::vector<int64_t> cutmixShape; ///< [C, H, W], for cutmix
};

/// Labels the model reads as class indices (cross_entropy, one_hot of the
/// labels input) must be below its class count: checked once, here, rather
/// than when their batch runs.
llvm::Error Trainer::checkLabels(const Graph &g) {
  std::vector<Node *> inputs = g.leaves(Op::Input);
  const Node *labels = inputs[1];
  for (const auto &n : g.nodes) {
    int64_t classes = 0;
    if (n->op == Op::CrossEntropy && n->operands[1] == labels)
      classes = n->operands[0]->type.shape[1];
    else if (n->op == Op::OneHot && n->operands[0] == labels)
      classes = n->intAttr("classes");
    else
      continue;
    for (const Subset *s : {&data.train, &data.valid})
      for (int64_t row : s->rows) {
        int32_t y = s->data->labels.data<int32_t>()[row];
        if (y >= classes)
          return makeError(m.dataLocation + c.data.str() + ": label " +
                           llvm::Twine(y) + " (example " + llvm::Twine(row) +
                           ") is out of range for the " + llvm::Twine(classes) +
                           " classes of " + n->info().mnemonic + " at " +
                           where(*n).substr(0, where(*n).size() - 2));
      }
  }
  return llvm::Error::success();
}

llvm::Error Trainer::loadInit() {
  auto params = readSafetensors(plan.init);
  if (!params)
    return params.takeError();
  std::vector<std::string> missing, extra;
  for (const auto &e : steps.session.store())
    if (e->kind == Op::Param && !params->count(e->name))
      missing.push_back("'" + e->name + "' " + e->type.str());
  for (auto &[name, t] : *params) {
    Session::Entry *e = steps.session.find(name);
    if (!e || e->kind != Op::Param)
      extra.push_back("'" + name + "'");
  }
  if (!missing.empty())
    return makeError(plan.init + " lacks parameters of model '" + c.model +
                     "': " + llvm::join(missing, ", "));
  if (!extra.empty())
    return makeError(plan.init + " holds what is not a parameter of model '" +
                     c.model +
                     "' (--init takes parameters only; --resume "
                     "continues a checkpoint): " +
                     llvm::join(extra, ", "));
  if (auto e = steps.session.load(*params, /*partial=*/true))
    return makeError(plan.init + ": " + llvm::toString(std::move(e)));
  return llvm::Error::success();
}

llvm::Error Trainer::start(bool resume) {
  // A checkpoint that cannot be resumed fails before anything compiles.
  settings = runSettings(m, data, plan.shuffle);
  int64_t resumedSteps = 0;
  if (resume) {
    if (auto e = checkResume(plan.checkpoint, m, settings, batchesPerEpoch(),
                             progress, resumedSteps))
      return e;
    if (progress.epoch >= plan.epochs)
      return makeError(llvm::formatv("{0} already holds {1} epochs; ask for "
                                     "more with --epochs",
                                     plan.checkpoint, progress.epoch)
                           .str());
    if (plan.maxSteps && resumedSteps >= *plan.maxSteps)
      return makeError(llvm::formatv("{0} already holds {1} steps; --steps "
                                     "{2} asks for no more",
                                     plan.checkpoint, resumedSteps,
                                     *plan.maxSteps)
                           .str());
    if (c.earlyStop && progress.badEpochs >= c.earlyStop)
      return makeError(
          llvm::formatv("{0}: the run stopped early at epoch {1} (no "
                        "better {2} loss for {3} epochs); there is "
                        "nothing to resume",
                        plan.checkpoint, progress.epoch, data.validName,
                        progress.badEpochs)
              .str());
  }
  auto full = steps.train(c.batch);
  if (!full)
    return full.takeError();
  // The data's examples must fill the model's input.
  if (auto e = checkExampleSize(steps, **full, data, m))
    return e;
  const Step::Leaf &x = steps.session.step((*full)->index).leaves()[(*full)->x];
  if (auto e = checkLabels(*steps.forward))
    return e;
  if (c.cutmix > 0) {
    // Images: [C, H, W] from the model's input, else [1, H, W] from the
    // data's.
    llvm::ArrayRef<int64_t> in = x.type.shape;
    llvm::ArrayRef<int64_t> img = data.train.data->images.shape();
    if (in.size() == 4)
      cutmixShape = {in[1], in[2], in[3]};
    else if (img.size() == 3)
      cutmixShape = {1, img[1], img[2]};
    else
      return makeError(m.dataLocation +
                       "cutmix pastes boxes of images, but "
                       "model '" +
                       c.model + "' takes " + x.type.str() +
                       " and the data has no image shape");
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
  if (!plan.checkpoint.empty()) {
    auto h = modelHash(m, c.batch);
    if (!h)
      return h.takeError();
    hash = *h;
  }
  // Initial values, for every parameter and state the steps know.
  if (auto e = steps.session.load(initialParams(*steps.forward, c.seed),
                                  /*partial=*/true))
    return e;
  int64_t planned = plan.epochs * batchesPerEpoch();
  if (!resume) {
    progress.scheduleSteps = planned;
    return plan.init.empty() ? llvm::Error::success() : loadInit();
  }
  if (auto e = loadCheckpoint(plan.checkpoint, steps.session, m,
                              /*resume=*/true))
    return e;
  steps.session.stepCount = resumedSteps;
  if (c.schedule.kind == Schedule::Cosine && progress.scheduleSteps != planned)
    llvm::errs() << llvm::formatv(
        "kiln: warning: the cosine schedule now runs over {0} steps, not the "
        "{1} the checkpoint's run planned: the rest of the run is not the "
        "one a straight run of {2} epochs would be\n",
        planned, progress.scheduleSteps, plan.epochs);
  progress.scheduleSteps = planned;
  // Timings are not in the checkpoint; the earlier metrics file has them.
  if (plan.metrics.empty() || !llvm::sys::fs::exists(plan.metrics))
    return llvm::Error::success();
  auto old = readMetricsCsv(plan.metrics);
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

llvm::Error Trainer::trainStep(const std::vector<int64_t> &order, int64_t b,
                               int64_t epoch) {
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
  double rate =
      c.schedule.at(c.optimizer.arg("lr"), t, progress.scheduleSteps, epoch);
  std::vector<double> values = c.optimizer.scalars(rate, t);
  for (size_t i = 0; i < values.size(); ++i)
    *static_cast<float *>(s.input(st.index, st.scalars[i])) = float(values[i]);

  TensorMap before;
  if (plan.checkNumerics)
    before = s.snapshot();
  s.stepCount = t;
  if (auto e = s.run(st.index, c.seed))
    return makeError("step " + llvm::Twine(t) + ": " +
                     llvm::toString(std::move(e)));
  double loss = s.step(st.index).objective();
  // Formatted only on the error paths, off the per-step path.
  auto where = [&] {
    return llvm::formatv("step {0} (epoch {1}, batch {2} of {3})", t, epoch + 1,
                         b + 1, batchesPerEpoch())
        .str();
  };
  if (!std::isfinite(loss))
    return makeError(where() + ": the loss is " + llvm::formatv("{0}", loss) +
                     (plan.checkNumerics
                          ? findNonFinite(st, before, s, c.seed, uint64_t(t))
                          : "; --check-numerics names the first op that "
                            "produced it"));
  if (plan.checkNumerics)
    // A finite loss can still come with a non-finite gradient or update.
    for (const auto &e : s.store())
      if (!allFinite(e->buffer.data(), e->type))
        return makeError(where() + ": the step made " +
                         opInfo(e->kind).mnemonic + " '" + e->name +
                         "' non-finite" +
                         findNonFinite(st, before, s, c.seed, uint64_t(t)));
  progress.epochLossSum += loss * double(n);
  progress.epochExamples += int64_t(n);
  return llvm::Error::success();
}

llvm::Error Trainer::save() {
  if (plan.checkpoint.empty())
    return llvm::Error::success();
  return saveCheckpoint(plan.checkpoint, steps.session, m, progress, settings,
                        hash);
}

llvm::Error Trainer::writeOutputs() {
  if (!plan.metrics.empty())
    if (auto e = writeMetricsCsv(plan.metrics, progress.metrics))
      return e;
  if (!plan.plot.empty())
    if (auto e = plotMetrics(plan.plot, progress.metrics,
                             "kiln train " + m.path + " (" + c.model + ")"))
      return e;
  return llvm::Error::success();
}

llvm::Expected<Score> Trainer::run() {
  const int64_t batches = batchesPerEpoch();
  Score score;
  bool stop = false;
  auto reached = [&] {
    return plan.maxSteps && steps.session.stepCount >= *plan.maxSteps;
  };
  if (reached())
    return makeError(llvm::formatv("{0} already holds {1} steps; --steps {2} "
                                   "asks for no more",
                                   plan.checkpoint, steps.session.stepCount,
                                   *plan.maxSteps)
                         .str());
  for (int64_t epoch = progress.epoch; epoch < plan.epochs && !stop; ++epoch) {
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
      if (auto e = trainStep(order, b, epoch))
        return std::move(e);
      stepTimes.push_back(secondsSince(t0));
      progress.batchInEpoch = b + 1;
      double elapsed = secondsSince(start);
      double rate =
          double(progress.epochExamples) / std::max(1e-9, elapsed + carried);
      double eta =
          (elapsed / double(stepTimes.size())) * double(batches - b - 1);
      bar.update(epoch + 1, plan.epochs, b + 1, batches,
                 progress.epochLossSum / double(progress.epochExamples), rate,
                 eta);
      if (reached() && b + 1 < batches) {
        // Stopped inside an epoch: keep the position for --resume.
        bar.clear();
        progress.epochSeconds = carried + secondsSince(start);
        llvm::outs() << "stopped after step " << steps.session.stepCount
                     << " (epoch " << epoch + 1 << ", batch " << b + 1 << " of "
                     << batches << ")\n";
        if (auto e = save())
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
    if (reached() && epoch + 1 < plan.epochs) {
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
  row.msPerStep = 1e3 * median(std::vector<double>(stepTimes.begin() + warm,
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
  if (auto e = save())
    return e;
  return writeOutputs();
}

/// The JIT for --threads, or null with --backend=interp.
llvm::Expected<std::unique_ptr<JIT>> makeTrainJIT() {
  if (backend == Backend::Interp)
    return nullptr;
  JITOptions opts;
  opts.threads = threads;
  return JIT::create(opts);
}

/// An error unless `path`'s folder exists: checked before training, so a
/// typo does not cost an epoch.
llvm::Error checkWritable(llvm::StringRef flag, llvm::StringRef path) {
  if (path.empty())
    return llvm::Error::success();
  llvm::StringRef dir = llvm::sys::path::parent_path(path);
  if (!dir.empty() && !llvm::sys::fs::is_directory(dir))
    return makeError(flag + " " + path + ": the folder " + dir +
                     " does not exist");
  return llvm::Error::success();
}

int runKFold(const ModelSource &m, RunData &all, JIT *jit,
             const RunPlan &plan) {
  const TrainConfig &c = m.config;
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
    Trainer t(m, fold, jit, plan);
    llvm::Error e = t.start(false);
    llvm::Expected<Score> s = e ? llvm::Expected<Score>(std::move(e)) : t.run();
    if (!s)
      return fail(llvm::toString(s.takeError()));
    accuracies.push_back(s->accuracy);
  }
  double mean = 0, var = 0;
  for (double a : accuracies)
    mean += a / double(accuracies.size());
  for (double a : accuracies)
    var += (a - mean) * (a - mean) / double(accuracies.size());
  llvm::outs() << llvm::formatv("{0}-fold accuracy: {1} +- {2} (folds: ", kfold,
                                fmt(mean), fmt(std::sqrt(var)));
  for (size_t i = 0; i < accuracies.size(); ++i)
    llvm::outs() << (i ? ", " : "") << fmt(accuracies[i]);
  llvm::outs() << ")\n";
  return 0;
}

} // namespace

int kiln::runTrainCommand(ModelSource &m) {
  TrainConfig &c = m.config;
  if (auto e = flags::checkTrainOutputs(c.data))
    return fail(llvm::toString(std::move(e)));
  if (kfold.getNumOccurrences() && c.split > 0)
    return fail(m.dataLocation + "--kfold splits the training data itself; "
                                 "the train block's 'split' does not apply");
  RunPlan plan;
  plan.epochs = c.epochs;
  plan.shuffle = shuffle;
  plan.progress = llvm::sys::Process::StandardErrIsDisplayed();
  plan.checkNumerics = checkNumerics;
  plan.checkpoint = checkpoint;
  plan.metrics = metricsFile;
  plan.plot = plotFile;
  plan.init = initFile;
  if (maxSteps.getNumOccurrences())
    plan.maxSteps = maxSteps;
  for (auto [flag, path] :
       {std::pair{"--checkpoint", &plan.checkpoint},
        std::pair{"--metrics", &plan.metrics}, std::pair{"--plot", &plan.plot}})
    if (auto e = checkWritable(flag, *path))
      return fail(llvm::toString(std::move(e)));
  auto data = loadRunData(m);
  if (!data)
    return fail(llvm::toString(data.takeError()));
  auto jit = makeTrainJIT();
  if (!jit)
    return fail(llvm::toString(jit.takeError()));
  RunData &d = **data;
  bool folds = kfold.getNumOccurrences();
  llvm::outs() << "training " << c.model << " on " << c.data.str() << ": "
               << (folds ? d.splits.train.size() : d.train.size())
               << " examples, "
               << (folds ? "in " + std::to_string(kfold) + " folds"
                   : d.valid.size()
                       ? std::to_string(d.valid.size()) + " " + d.validName
                       : std::string("no validation"))
               << "; batch " << c.batch << ", " << c.optimizer.str()
               << (c.schedule.kind != Schedule::Constant
                       ? ", schedule " + c.schedule.str()
                       : std::string())
               << "\n";
  if (folds)
    return runKFold(m, d, jit->get(), plan);

  Trainer t(m, d, jit->get(), plan);
  if (auto e = t.start(resume))
    return fail(llvm::toString(std::move(e)));
  auto score = t.run();
  if (!score)
    return fail(llvm::toString(score.takeError()));
  return 0;
}

int kiln::runEvalCommand(ModelSource &m) {
  TrainConfig &c = m.config;
  // The test split; without one, the share `split` held out, chosen with
  // the checkpoint's seed.
  auto file = readSafetensorsFile(checkpoint);
  if (!file)
    return fail(llvm::toString(file.takeError()));
  if (auto it = file->metadata.find("rng"); it != file->metadata.end()) {
    auto rng = nlohmann::json::parse(it->second, nullptr, false);
    if (!rng.is_discarded() && rng.contains("split") &&
        rng["split"].contains("seed") && rng["split"]["seed"].is_number())
      c.seed = rng["split"]["seed"].get<int64_t>();
  }
  auto data = loadRunData(m, /*preferTest=*/true);
  if (!data)
    return fail(llvm::toString(data.takeError()));
  if (!(*data)->valid.size())
    return fail(c.data.str() + " has no test split, and the train block sets "
                               "no 'split' to validate on");
  auto jit = makeTrainJIT();
  if (!jit)
    return fail(llvm::toString(jit.takeError()));
  Steps steps(m, jit->get());
  const Subset &valid = (*data)->valid;
  int64_t full = std::min<int64_t>(c.batch, int64_t(valid.size()));
  for (int64_t n : {full, int64_t(valid.size()) % c.batch})
    if (n) {
      auto s = steps.eval(n);
      if (!s)
        return fail(llvm::toString(s.takeError()));
      if (auto e = checkExampleSize(steps, **s, **data, m))
        return fail(llvm::toString(std::move(e)));
    }
  if (auto e = loadCheckpoint(checkpoint, steps.session, m, /*resume=*/false))
    return fail(llvm::toString(std::move(e)));
  auto score = evaluate(steps, valid, c.batch);
  if (!score)
    return fail(llvm::toString(score.takeError()));
  llvm::outs() << llvm::formatv("{0} loss {1}, {0} accuracy {2} ({3} "
                                "examples)\n",
                                (*data)->validName, fmt(score->loss),
                                fmt(score->accuracy), valid.size());
  return 0;
}
