//===- Elementwise.cpp - Elementwise ops ----------------------------------===//
//
// Each elementwise op is a scalar function, written once as a functor that
// the reference interpreter maps over the buffer with Eigen (and that
// codegen will compose inside one loop nest). Binary operands have equal
// shapes: the frontend makes broadcasting explicit.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include <Eigen/Core>
#include <cmath>

using namespace kiln;

namespace {

template <typename T>
using Vec = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using CVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

llvm::Expected<TensorType> shapeUnary(const Node &n) {
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  llvm::StringRef attr = n.op == Op::LeakyRelu ? "slope"
                         : n.op == Op::Elu     ? "alpha"
                                               : "";
  if (!attr.empty())
    if (auto v = n.getFloat(attr); !v)
      return v.takeError();
  return n.operands[0]->type;
}

llvm::Expected<TensorType> shapeBinary(const Node &n) {
  const TensorType &a = n.operands[0]->type, &b = n.operands[1]->type;
  if (auto e = expectFloat(n, 0))
    return std::move(e);
  if (a != b)
    return makeError("'" + n.info().mnemonic +
                     "' needs operands of one type, got " + a.str() + " and " +
                     b.str());
  return a;
}

template <typename F, typename T>
void evalUnary(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
               EvalContext &) {
  F f(n);
  Vec<T>(out.data<T>(), out.numel()) =
      CVec<T>(in[0]->data<T>(), out.numel()).unaryExpr([&](T x) {
        return f(x);
      });
}

template <typename F, typename T>
void evalBinary(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                EvalContext &) {
  F f(n);
  Vec<T>(out.data<T>(), out.numel()) =
      CVec<T>(in[0]->data<T>(), out.numel())
          .binaryExpr(CVec<T>(in[1]->data<T>(), out.numel()),
                      [&](T a, T b) { return f(a, b); });
}

// A scalar function with no attributes.
#define SCALAR_FN(Name, expr)                                                  \
  struct Name {                                                                \
    explicit Name(const Node &) {}                                             \
    template <typename T> T operator()(T a) const { return expr; }             \
  };
#define SCALAR_FN2(Name, expr)                                                 \
  struct Name {                                                                \
    explicit Name(const Node &) {}                                             \
    template <typename T> T operator()(T a, T b) const { return expr; }        \
  };

// neg: -a
SCALAR_FN(NegF, -a)
// exp: e^a
SCALAR_FN(ExpF, std::exp(a))
// log: natural logarithm (-inf at 0, NaN below, as in PyTorch).
SCALAR_FN(LogF, std::log(a))
// sqrt
SCALAR_FN(SqrtF, std::sqrt(a))
// abs
SCALAR_FN(AbsF, std::abs(a))
// tanh
SCALAR_FN(TanhF, std::tanh(a))
// sigmoid: 1 / (1 + e^-a)
SCALAR_FN(SigmoidF, T(1) / (T(1) + std::exp(-a)))
// relu: max(a, 0); NaN propagates.
SCALAR_FN(ReluF, a > T(0) || std::isnan(a) ? a : T(0))
// gelu: a * Phi(a), PyTorch's default (exact, erf) form.
SCALAR_FN(GeluF, T(0.5) * a * (T(1) + std::erf(a * T(M_SQRT1_2))))
// softplus: log(1 + e^a), linear above 20 as torch.nn.functional.softplus.
SCALAR_FN(SoftplusF, a > T(20) ? a : std::log1p(std::exp(a)))

// erf
SCALAR_FN(ErfF, std::erf(a))
// step: a > 0 ? 1 : 0 (0 at 0 and for NaN)
SCALAR_FN(StepF, a > T(0) ? T(1) : T(0))
// stop_gradient: the identity; autodiff sends nothing through it.
SCALAR_FN(StopGradientF, a)

// leaky_relu {slope}: a >= 0 ? a : slope * a
struct LeakyReluF {
  double slope;
  explicit LeakyReluF(const Node &n) : slope(n.floatAttr("slope")) {}
  template <typename T> T operator()(T a) const {
    return a >= T(0) ? a : T(slope) * a;
  }
};
// elu {alpha}: a > 0 ? a : alpha * (e^a - 1)
struct EluF {
  double alpha;
  explicit EluF(const Node &n) : alpha(n.floatAttr("alpha")) {}
  template <typename T> T operator()(T a) const {
    return a > T(0) ? a : T(alpha) * std::expm1(a);
  }
};

// add, sub, mul, div, pow
SCALAR_FN2(AddF, a + b)
SCALAR_FN2(SubF, a - b)
SCALAR_FN2(MulF, a *b)
SCALAR_FN2(DivF, a / b)
SCALAR_FN2(PowF, std::pow(a, b))
// maximum, minimum: NaN propagates, as torch.maximum.
SCALAR_FN2(MaximumF, std::isnan(a) || a > b ? a : b)
SCALAR_FN2(MinimumF, std::isnan(a) || a < b ? a : b)

// equal: a == b ? 1 : 0
SCALAR_FN2(EqualF, a == b ? T(1) : T(0))

#undef SCALAR_FN
#undef SCALAR_FN2

} // namespace

#define UNARY(E, F)                                                            \
  t[size_t(Op::E)] = {shapeUnary, &evalUnary<F, float>, &evalUnary<F, double>}
#define BINARY(E, F)                                                           \
  t[size_t(Op::E)] = {shapeBinary, &evalBinary<F, float>,                      \
                      &evalBinary<F, double>}

void kiln::registerElementwiseRules(RuleTable &t) {
  UNARY(Neg, NegF);
  UNARY(Exp, ExpF);
  UNARY(Log, LogF);
  UNARY(Sqrt, SqrtF);
  UNARY(Abs, AbsF);
  UNARY(Tanh, TanhF);
  UNARY(Sigmoid, SigmoidF);
  UNARY(Relu, ReluF);
  UNARY(LeakyRelu, LeakyReluF);
  UNARY(Elu, EluF);
  UNARY(Gelu, GeluF);
  UNARY(Softplus, SoftplusF);
  UNARY(Erf, ErfF);
  UNARY(Step, StepF);
  UNARY(StopGradient, StopGradientF);
  BINARY(Add, AddF);
  BINARY(Sub, SubF);
  BINARY(Mul, MulF);
  BINARY(Div, DivF);
  BINARY(Pow, PowF);
  BINARY(Maximum, MaximumF);
  BINARY(Minimum, MinimumF);
  BINARY(Equal, EqualF);
}
