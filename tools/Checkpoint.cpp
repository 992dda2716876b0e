//===- Checkpoint.cpp - Saving and resuming a training run ----------------===//
//
// __metadata__ holds strings (safetensors allows no other values), so the
// structured parts are JSON text: the random streams, the data position,
// the optimizer, early stopping, the run's settings and the metrics'
// deterministic columns. Timings are left out, so a checkpoint's bytes
// depend only on the run, never on the machine or the thread count.
//
//===----------------------------------------------------------------------===//
#include "tools/Checkpoint.h"
#include "ir/Printer.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/xxhash.h"
#include <nlohmann/json.hpp>

using namespace kiln;
using namespace kiln::train;
using json = nlohmann::json;

namespace {

constexpr const char *kFormat = "kiln-checkpoint-1";

json metricsJson(llvm::ArrayRef<EpochMetrics> rows) {
  json a = json::array();
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  for (const EpochMetrics &m : rows)
    a.push_back(
        {m.epoch, num(m.trainLoss), num(m.testLoss), num(m.testAccuracy)});
  return a;
}

std::vector<EpochMetrics> metricsFromJson(const json &a) {
  std::vector<EpochMetrics> rows;
  auto num = [](const json &v) {
    return v.is_number() ? v.get<double>() : double(NAN);
  };
  for (const json &r : a) {
    if (!r.is_array() || r.size() != 4 || !r[0].is_number_integer())
      throw std::runtime_error("a metrics row is not [epoch, 3 numbers]");
    rows.push_back({r[0].get<int64_t>(), num(r[1]), num(r[2]), num(r[3])});
  }
  return rows;
}

/// The checkpoint's metadata, with errors that name the file and the key.
class MetadataReader {
public:
  MetadataReader(llvm::StringRef path, const Metadata &meta)
      : path(path), meta(meta) {}
  llvm::Expected<std::string> string(const char *key) const {
    auto it = meta.find(key);
    if (it == meta.end())
      return makeError(path + ": not a Kiln checkpoint (no '" + key +
                       "' in __metadata__)");
    return it->second;
  }
  /// An integer in [lo, hi].
  llvm::Expected<int64_t> integer(const char *key, int64_t lo,
                                  int64_t hi) const {
    auto s = string(key);
    if (!s)
      return s.takeError();
    int64_t v;
    if (llvm::StringRef(*s).getAsInteger(10, v) || v < lo || v > hi)
      return bad(key, "'" + *s + "' is not an integer in [" +
                          std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }
  llvm::Expected<json> object(const char *key) const {
    auto s = string(key);
    if (!s)
      return s.takeError();
    json j = json::parse(*s, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
      return bad(key, "not JSON");
    return j;
  }
  llvm::Error bad(const char *key, const llvm::Twine &why) const {
    return makeError(path + ": malformed checkpoint metadata '" + key +
                     "': " + why);
  }

private:
  std::string path;
  const Metadata &meta;
};

} // namespace

llvm::Expected<std::string> kiln::train::modelHash(const ModelSource &m,
                                                   int64_t batch) {
  auto g = m.lower(batch, /*train=*/true);
  if (!g)
    return makeError("cannot lower model '" + m.config.model +
                     "' at batch size " + llvm::Twine(batch));
  for (auto &n : g->nodes)
    n->loc = Location();
  std::string text;
  llvm::raw_string_ostream os(text);
  printGraph(*g, os);
  return llvm::utohexstr(llvm::xxh3_64bits(text), /*LowerCase=*/true);
}

std::vector<std::string>
kiln::train::runSettings(const ModelSource &m, const RunData &d, bool shuffle) {
  const TrainConfig &c = m.config;
  std::vector<std::string> s = {
      "data=" + c.data.str(),
      "train_examples=" + std::to_string(d.train.size()),
      "validation_examples=" + std::to_string(d.valid.size()),
      "batch=" + std::to_string(c.batch),
      "seed=" + std::to_string(c.seed),
      "split=" + formatFloat(c.split),
      "optimizer=" + c.optimizer.str(),
      "schedule=" + c.schedule.str(),
      "mixup=" + formatFloat(c.mixup),
      "cutmix=" + formatFloat(c.cutmix),
      "early_stop=" + std::to_string(c.earlyStop),
      std::string("shuffle=") + (shuffle ? "true" : "false"),
  };
  return s;
}

llvm::Error kiln::train::saveCheckpoint(llvm::StringRef path,
                                        const Session &session,
                                        const ModelSource &m, const Progress &p,
                                        llvm::ArrayRef<std::string> settings,
                                        llvm::StringRef hash) {
  const TrainConfig &c = m.config;
  Metadata meta;
  meta["format"] = kFormat;
  meta["model"] = c.model;
  meta["model_hash"] = hash.str();
  meta["epoch"] = std::to_string(p.epoch);
  meta["step"] = std::to_string(session.stepCount);
  meta["batch"] = std::to_string(c.batch);
  json rng = {{"shuffle", {{"seed", c.seed}, {"epoch", p.epoch}}},
              {"dropout", {{"seed", c.seed}, {"step", session.stepCount}}},
              {"mix", {{"seed", c.seed}, {"step", session.stepCount}}},
              {"split", {{"seed", c.seed}, {"share", c.split}}}};
  meta["rng"] = rng.dump();
  json data = {{"source", c.data.str()},
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
  meta["schedule_steps"] = std::to_string(p.scheduleSteps);
  json early = {{"patience", c.earlyStop}, {"bad_epochs", p.badEpochs}};
  if (std::isfinite(p.bestValidLoss))
    early["best_loss"] = p.bestValidLoss;
  meta["early_stop"] = early.dump();
  meta["settings"] = json(settings).dump();
  meta["metrics"] = metricsJson(p.metrics).dump();
  return writeSafetensors(path, session.snapshot(), meta);
}

/// The checkpoint's format, and the file.
static llvm::Expected<SafetensorsFile> readCheckpoint(llvm::StringRef path) {
  auto file = readSafetensorsFile(path);
  if (!file)
    return file.takeError();
  MetadataReader meta(path, file->metadata);
  auto format = meta.string("format");
  if (!format)
    return format.takeError();
  if (*format != kFormat)
    return makeError(path + ": unknown checkpoint format '" + *format + "'");
  return std::move(*file);
}

llvm::Error kiln::train::loadCheckpoint(llvm::StringRef path, Session &session,
                                        const ModelSource &m, bool resume) {
  auto file = readCheckpoint(path);
  if (!file)
    return file.takeError();
  MetadataReader meta(path, file->metadata);
  auto model = meta.string("model");
  if (!model)
    return model.takeError();
  // Names and shapes first: they say the most about a different model.
  std::vector<std::string> problems;
  if (auto e = session.load(file->tensors, /*partial=*/!resume))
    problems.push_back(llvm::toString(std::move(e)));
  else
    for (const auto &e : session.store())
      if (!file->tensors.count(e->name))
        problems.push_back("'" + e->name + "' " + e->type.str() +
                           " is missing");
  if (!problems.empty())
    return makeError(path + ": the checkpoint (of model '" + *model +
                     "') does not fit model '" + m.config.model +
                     "': " + llvm::join(problems, "; "));
  auto batch = meta.integer("batch", 1, INT64_MAX);
  if (!batch)
    return batch.takeError();
  auto hash = meta.string("model_hash");
  if (!hash)
    return hash.takeError();
  auto ours = modelHash(m, *batch);
  if (!ours)
    return ours.takeError();
  if (*hash != *ours) {
    if (resume)
      return makeError(path + ": the checkpoint's parameters fit, but it was "
                              "written for a different model (its hash "
                              "differs), so resuming would not continue the "
                              "same training");
    llvm::errs() << "kiln: warning: " << path
                 << ": the model changed since this checkpoint was written\n";
  }
  return llvm::Error::success();
}

llvm::Error kiln::train::checkResume(llvm::StringRef path, const ModelSource &m,
                                     llvm::ArrayRef<std::string> resume,
                                     int64_t batchesPerEpoch, Progress &p,
                                     int64_t &step) {
  auto file = readCheckpoint(path);
  if (!file)
    return file.takeError();
  return readProgress(path, file->metadata, m.config.batch, resume,
                      batchesPerEpoch, p, step);
}

llvm::Error
kiln::train::readProgress(llvm::StringRef path, const Metadata &metadata,
                          int64_t ourBatch, llvm::ArrayRef<std::string> resume,
                          int64_t batchesPerEpoch, Progress &p, int64_t &step) {
  MetadataReader meta(path, metadata);
  auto batch = meta.integer("batch", 1, INT64_MAX);
  if (!batch)
    return batch.takeError();
  if (*batch != ourBatch)
    return makeError(path + ": the checkpoint was trained with batch " +
                     llvm::Twine(*batch) + "; resume with --batch " +
                     llvm::Twine(*batch));
  // Every setting of the run must be the checkpoint's.
  auto settings = meta.object("settings");
  if (!settings)
    return settings.takeError();
  if (!settings->is_array())
    return meta.bad("settings", "not a list");
  std::vector<std::string> was;
  for (const json &s : *settings)
    if (s.is_string())
      was.push_back(s.get<std::string>());
  std::vector<std::string> differ;
  for (const std::string &now : resume) {
    llvm::StringRef key = llvm::StringRef(now).split('=').first;
    auto it = llvm::find_if(was, [&](const std::string &w) {
      return llvm::StringRef(w).split('=').first == key;
    });
    if (it == was.end() || *it != now)
      differ.push_back(
          key.str() + " is " + llvm::StringRef(now).split('=').second.str() +
          (it == was.end() ? ""
                           : ", the checkpoint's " +
                                 llvm::StringRef(*it).split('=').second.str()));
  }
  if (!differ.empty())
    return makeError(path + ": resuming needs the checkpoint's settings, and " +
                     llvm::join(differ, "; "));

  auto epoch = meta.integer("epoch", 0, INT64_MAX / 2);
  auto stepCount = meta.integer("step", 0, INT64_MAX / 2);
  auto sched = meta.integer("schedule_steps", 0, INT64_MAX / 2);
  auto pos = meta.object("data_position");
  auto early = meta.object("early_stop");
  auto metrics = meta.object("metrics");
  if (!epoch)
    return epoch.takeError();
  if (!stepCount)
    return stepCount.takeError();
  if (!sched)
    return sched.takeError();
  if (!pos)
    return pos.takeError();
  if (!early)
    return early.takeError();
  if (!metrics)
    return metrics.takeError();
  try {
    p.epoch = *epoch;
    p.batchInEpoch = pos->at("batch_in_epoch").get<int64_t>();
    p.epochLossSum = pos->at("epoch_loss_sum").get<double>();
    p.epochExamples = pos->at("epoch_examples").get<int64_t>();
    p.badEpochs = early->at("bad_epochs").get<int64_t>();
    if (early->contains("best_loss"))
      p.bestValidLoss = early->at("best_loss").get<double>();
    p.metrics = metricsFromJson(*metrics);
  } catch (const std::exception &e) {
    return makeError(path + ": malformed checkpoint metadata: " + e.what());
  }
  p.scheduleSteps = *sched;
  // The position must be one this run can reach.
  if (p.batchInEpoch < 0 || p.batchInEpoch >= batchesPerEpoch ||
      *stepCount != p.epoch * batchesPerEpoch + p.batchInEpoch ||
      p.epochExamples < 0 || p.badEpochs < 0 ||
      int64_t(p.metrics.size()) != p.epoch)
    return makeError(
        path + ": the checkpoint's position (epoch " + llvm::Twine(p.epoch) +
        ", step " + llvm::Twine(*stepCount) + ", batch " +
        llvm::Twine(p.batchInEpoch) + " of the epoch) does not fit " +
        llvm::Twine(batchesPerEpoch) + " batches per epoch");
  step = *stepCount;
  return llvm::Error::success();
}
