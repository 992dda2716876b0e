//===- TrainSteps.cpp - Data, compiled steps and evaluation of a run ------===//
//
// A run compiles one training step per batch size it meets (the full batch
// and the last, partial one) and one evaluation step per validation batch
// size, all attached to one Session so they share the parameters.
//
//===----------------------------------------------------------------------===//
#include "tools/TrainSteps.h"
#include "passes/Pipeline.h"
#include "runtime/Batches.h"
#include "tools/Flags.h"
#include "support/Files.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace kiln;
using namespace kiln::train;

namespace {

//===-- Data -------------------------------------------------------------===//

/// The first line of a file, for comparing CSV headers.
std::string headerOf(llvm::StringRef path) {
  auto buf = readDataFile(path);
  if (!buf) {
    llvm::consumeError(buf.takeError());
    return "";
  }
  return (*buf)->getBuffer().split('\n').first.rtrim("\r").str();
}

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
      // Features are matched by position, so the columns must be the same.
      std::string trainHeader = headerOf(src.path);
      std::string testHeader = headerOf(src.test);
      if (trainHeader != testHeader)
        return makeError(src.test + ":1: the header '" + testHeader +
                         "' differs from " + src.path + "'s '" + trainHeader +
                         "'; the test file needs the same columns in the "
                         "same order");
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
/// or uses the test split; with `preferTest`, the test split wherever there
/// is one.
void chooseValidation(RunData &d, const TrainConfig &c, bool preferTest) {
  if (c.split > 0 && !(preferTest && d.splits.test)) {
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

} // namespace

llvm::Expected<std::unique_ptr<RunData>>
kiln::train::loadRunData(const ModelSource &m, bool preferTest) {
  const TrainConfig &c = m.config;
  auto splits = readData(c.data);
  if (!splits)
    return splits.takeError();
  auto d = std::make_unique<RunData>();
  d->splits = std::move(*splits);
  if (d->splits.train.size() < 2)
    return makeError(m.dataLocation + c.data.str() +
                     " has fewer than 2 examples");
  chooseValidation(*d, c, preferTest);
  return std::move(d);
}

//===-- Steps ------------------------------------------------------------===//

llvm::Expected<StepSlots *>
Steps::get(std::map<int64_t, std::unique_ptr<StepSlots>> &cache, int64_t batch,
           bool train) {
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
    opts.dropGradients = true;
    if (c.mixup > 0 || c.cutmix > 0)
      opts.mixLabels = yName;
    auto pipeline = trainingPipeline(opts);
    if (!pipeline)
      return pipeline.takeError();
    if (auto e = runPasses(*g, *pipeline, flags::passOptions(), llvm::outs()))
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

//===-- Evaluation -------------------------------------------------------===//

llvm::Error kiln::train::checkExampleSize(Steps &steps, const StepSlots &slots,
                                          const RunData &data,
                                          const ModelSource &m) {
  const Step::Leaf &x = steps.session.step(slots.index).leaves()[slots.x];
  int64_t perExample = *numElements(x.type.shape) / slots.batch;
  for (const Subset *s : {&data.train, &data.valid})
    if (s->data && s->data->exampleSize() != perExample)
      return makeError(m.dataLocation + m.config.data.str() + " has " +
                       llvm::Twine(s->data->exampleSize()) +
                       " values per example, but model '" + m.config.model +
                       "' takes " + x.type.str() + " (" +
                       llvm::Twine(perExample) + " per example)");
  return llvm::Error::success();
}

/// The index of the largest of n scores (the first, on ties).
template <typename T> static int64_t argmax(const T *v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best])
      best = i;
  return best;
}

/// Mean loss and accuracy over a subset, in order, in batches of `batch`
/// (the last one smaller). Accuracy needs class scores [B, C] as output.
llvm::Expected<Score> kiln::train::evaluate(Steps &steps, const Subset &s,
                                            int64_t batch) {
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
