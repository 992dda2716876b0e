//===- OptimizerTest.cpp - Optimizer updates against float64 formulas -----===//
//
// Each optimizer's first steps, run as a compiled step and as the
// interpreter's, against its update rule written out here in float64 from
// torch.optim's documented algorithms. Hyperparameters are chosen so each
// term matters (eps of 0.1, dampening, weight decay): a misplaced eps or a
// missing bias correction moves the result by percent, far above float32
// rounding.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"
#include "codegen/JIT.h"
#include "frontend/Train.h"
#include "passes/Pipeline.h"
#include "runtime/Session.h"
#include <cmath>
#include <gtest/gtest.h>

using namespace kiln;

namespace {

constexpr int kN = 6;
constexpr int kSteps = 6;
const double kW0[kN] = {0.8, -1.2, 0.3, 2.0, -0.05, 1.1};
const double kC[kN] = {1.5, 0.7, -2.0, 0.4, 3.0, -0.9};

/// objective = 0.5 * sum(c * w * w), so d/dw = c * w.
const char *kGraph = R"(graph @q {
  %w = param {init = "zeros", name = "w"} : f32[6]
  %c = input {name = "c"} : f32[6]
  %a = mul %c, %w : f32[6]
  %b = mul %a, %w : f32[6]
  %s = sum %b {axes = [], keepdims = 0} : f32[]
  %h = constant {value = 0.5} : f32[]
  %l = mul %s, %h : f32[]
  minimize %l
}
)";

struct Case {
  const char *name;
  OptimizerConfig opt;
};
void PrintTo(const Case &c, std::ostream *os) { *os << c.name; }

OptimizerConfig config(const char *kind, std::map<std::string, double> args) {
  OptimizerConfig c{kind, {}};
  for (const OptimizerArg &a : findOptimizer(kind)->args)
    c.args[a.name] = args.count(a.name) ? args[a.name] : a.def.value_or(0);
  return c;
}

/// One element's trajectory under torch.optim's rules, in float64.
std::vector<double> reference(const OptimizerConfig &o, double w, double c,
                              double lr) {
  std::vector<double> out;
  double buf = 0, sum = 0, sq = 0, acc = 0, ga = 0, m = 0, v = 0;
  double wd = o.arg("weight_decay");
  for (int t = 1; t <= kSteps; ++t) {
    double g = c * w;
    if (o.kind == "sgd") {
      g += wd * w;
      if (double mu = o.arg("momentum")) {
        buf = t == 1 ? g : mu * buf + (1 - o.arg("dampening")) * g;
        g = o.arg("nesterov") ? g + mu * buf : buf;
      }
      w -= lr * g;
    } else if (o.kind == "adagrad") {
      g += wd * w;
      double clr = lr / (1 + (t - 1) * o.arg("lr_decay"));
      sum += g * g;
      w -= clr * g / (std::sqrt(sum) + o.arg("eps"));
    } else if (o.kind == "adadelta") {
      g += wd * w;
      double rho = o.arg("rho"), eps = o.arg("eps");
      sq = rho * sq + (1 - rho) * g * g;
      double delta = std::sqrt(acc + eps) / std::sqrt(sq + eps) * g;
      acc = rho * acc + (1 - rho) * delta * delta;
      w -= lr * delta;
    } else if (o.kind == "rmsprop") {
      g += wd * w;
      double alpha = o.arg("alpha");
      sq = alpha * sq + (1 - alpha) * g * g;
      double avg;
      if (o.arg("centered")) {
        ga = alpha * ga + (1 - alpha) * g;
        avg = std::sqrt(sq - ga * ga) + o.arg("eps");
      } else {
        avg = std::sqrt(sq) + o.arg("eps");
      }
      if (double mu = o.arg("momentum")) {
        buf = mu * buf + g / avg;
        w -= lr * buf;
      } else {
        w -= lr * g / avg;
      }
    } else { // adam, adamw
      if (o.kind == "adamw")
        w *= 1 - lr * wd;
      else
        g += wd * w;
      double b1 = o.arg("beta1"), b2 = o.arg("beta2");
      m = b1 * m + (1 - b1) * g;
      v = b2 * v + (1 - b2) * g * g;
      double mhat = m / (1 - std::pow(b1, t)), vhat = v / (1 - std::pow(b2, t));
      w -= lr * mhat / (std::sqrt(vhat) + o.arg("eps"));
    }
    out.push_back(w);
  }
  return out;
}

class OptimizerSteps : public ::testing::TestWithParam<std::tuple<Case, bool>> {
};

TEST_P(OptimizerSteps, MatchTorchFormulasInFloat64) {
  auto [c, useJIT] = GetParam();
  test::Source src(kGraph);
  auto g = test::parseGraph(src);
  ASSERT_TRUE(g);
  TrainingOptions opts;
  opts.optimizer = &c.opt;
  auto steps = trainingPipeline(opts);
  ASSERT_TRUE(bool(steps)) << llvm::toString(steps.takeError());
  ASSERT_FALSE(bool(runPasses(*g, *steps, {}, llvm::nulls())));

  std::unique_ptr<JIT> jit;
  std::unique_ptr<Step> step;
  if (useJIT) {
    jit = llvm::cantFail(JIT::create());
    auto compiled = jit->compile(*g);
    ASSERT_TRUE(bool(compiled)) << llvm::toString(compiled.takeError());
    step = llvm::cantFail(JITStep::create(*compiled));
  } else {
    step = std::make_unique<InterpStep>(*g);
  }
  Session s;
  size_t i = llvm::cantFail(s.attach(std::move(step)));
  float *w = s.find("w")->buffer.as<float>();
  float *cIn =
      static_cast<float *>(s.input(i, llvm::cantFail(s.inputIndex(i, "c"))));
  for (int k = 0; k < kN; ++k) {
    w[k] = float(kW0[k]);
    cIn[k] = float(kC[k]);
  }
  // The state PyTorch keeps, zero to begin with, lives in the store.
  for (const std::string &name : c.opt.stateNames())
    ASSERT_NE(s.find("w." + name), nullptr) << name;
  double lr = c.opt.arg("lr");
  std::vector<std::vector<double>> want;
  for (int k = 0; k < kN; ++k)
    want.push_back(reference(c.opt, float(kW0[k]), float(kC[k]), lr));
  std::vector<std::string> names = c.opt.scalarNames();
  for (int t = 1; t <= kSteps; ++t) {
    std::vector<double> values = c.opt.scalars(lr, t);
    for (size_t k = 0; k < names.size(); ++k)
      *static_cast<float *>(s.input(
          i, llvm::cantFail(s.inputIndex(i, optimizerInputName(names[k]))))) =
          float(values[k]);
    s.stepCount = t;
    ASSERT_FALSE(bool(s.run(i, 0)));
    for (int k = 0; k < kN; ++k) {
      double r = want[k][t - 1];
      // Float32 rounding over a few steps, relative to the values' scale.
      EXPECT_NEAR(w[k], r, 2e-5 * (1 + std::fabs(r)))
          << c.name << " step " << t << " element " << k;
    }
  }
}

std::vector<Case> cases() {
  return {
      {"sgd", config("sgd", {{"lr", 0.1}})},
      {"sgd_momentum", config("sgd", {{"lr", 0.05},
                                      {"momentum", 0.9},
                                      {"dampening", 0.3},
                                      {"weight_decay", 0.1}})},
      {"sgd_nesterov", config("sgd", {{"lr", 0.05},
                                      {"momentum", 0.9},
                                      {"nesterov", 1},
                                      {"weight_decay", 0.1}})},
      {"adagrad", config("adagrad", {{"lr", 0.3},
                                     {"lr_decay", 0.5},
                                     {"weight_decay", 0.1},
                                     {"eps", 0.1}})},
      {"adadelta",
       config(
           "adadelta",
           {{"lr", 1.0}, {"rho", 0.8}, {"eps", 0.1}, {"weight_decay", 0.1}})},
      {"rmsprop", config("rmsprop", {{"lr", 0.02}, {"alpha", 0.9}})},
      {"rmsprop_centered_momentum", config("rmsprop", {{"lr", 0.02},
                                                       {"alpha", 0.9},
                                                       {"eps", 0.1},
                                                       {"momentum", 0.5},
                                                       {"centered", 1},
                                                       {"weight_decay", 0.1}})},
      {"adam", config("adam", {{"lr", 0.1},
                               {"beta1", 0.8},
                               {"beta2", 0.9},
                               {"eps", 0.1},
                               {"weight_decay", 0.1}})},
      {"adamw", config("adamw", {{"lr", 0.1},
                                 {"beta1", 0.8},
                                 {"beta2", 0.9},
                                 {"eps", 0.1},
                                 {"weight_decay", 0.2}})},
  };
}

INSTANTIATE_TEST_SUITE_P(Optimizers, OptimizerSteps,
                         ::testing::Combine(::testing::ValuesIn(cases()),
                                            ::testing::Bool()),
                         [](const auto &info) {
                           return std::string(std::get<0>(info.param).name) +
                                  (std::get<1>(info.param) ? "_jit"
                                                           : "_interp");
                         });

TEST(Schedules, FollowTorchLrSchedulers) {
  Schedule step;
  step.kind = Schedule::Step;
  step.every = 2;
  step.gamma = 0.5;
  // StepLR: lr * gamma^floor(epoch / step_size).
  EXPECT_DOUBLE_EQ(step.at(0.1, 1, 100, 0), 0.1);
  EXPECT_DOUBLE_EQ(step.at(0.1, 50, 100, 1), 0.1);
  EXPECT_DOUBLE_EQ(step.at(0.1, 60, 100, 2), 0.05);
  EXPECT_DOUBLE_EQ(step.at(0.1, 99, 100, 5), 0.025);
  Schedule warm;
  warm.kind = Schedule::Warmup;
  warm.warmup = 4;
  EXPECT_DOUBLE_EQ(warm.at(0.2, 1, 100, 0), 0.05);
  EXPECT_DOUBLE_EQ(warm.at(0.2, 4, 100, 0), 0.2);
  EXPECT_DOUBLE_EQ(warm.at(0.2, 90, 100, 3), 0.2);
  Schedule cosine;
  cosine.kind = Schedule::Cosine;
  cosine.warmup = 10;
  EXPECT_DOUBLE_EQ(cosine.at(1.0, 5, 110, 0), 0.5);
  EXPECT_DOUBLE_EQ(cosine.at(1.0, 10, 110, 0), 1.0);
  // Half-way through the annealing: cos(pi / 2) = 0.
  EXPECT_NEAR(cosine.at(1.0, 60, 110, 0), 0.5, 1e-12);
  EXPECT_NEAR(cosine.at(1.0, 110, 110, 0), 0.0, 1e-12);
  Schedule none;
  EXPECT_DOUBLE_EQ(none.at(0.3, 7, 10, 1), 0.3);
}

TEST(OptimizerScalars, AreTorchsStepQuantities) {
  OptimizerConfig adam = config("adam", {{"beta1", 0.9}, {"beta2", 0.99}});
  std::vector<double> s = adam.scalars(0.01, 3);
  ASSERT_EQ(adam.scalarNames(),
            (std::vector<std::string>{"step_size", "bias_correction2_sqrt"}));
  EXPECT_DOUBLE_EQ(s[0], 0.01 / (1 - 0.9 * 0.9 * 0.9));
  EXPECT_NEAR(s[1], std::sqrt(1 - 0.99 * 0.99 * 0.99), 1e-14);
  OptimizerConfig sgd = config("sgd", {{"momentum", 0.9}, {"dampening", 0.5}});
  EXPECT_EQ(sgd.scalars(0.1, 1)[1], 1.0); // the buffer starts as the gradient
  EXPECT_EQ(sgd.scalars(0.1, 2)[1], 0.5);
  EXPECT_EQ(config("sgd", {}).stateNames().size(), 0u);
  EXPECT_EQ(
      config("rmsprop", {{"momentum", 0.1}, {"centered", 1}}).stateNames(),
      (std::vector<std::string>{"square_avg", "momentum_buffer", "grad_avg"}));
}

} // namespace
