//===- Scalar.h - Each elementwise op's scalar function, once --*- C++ -*-===//
//
// The math of every elementwise op, and dropout's counter-based generator,
// is written here once as a template over a small scalar algebra S:
//
//   S::V  a float value      c(double), add, sub, mul, div, neg, exp, log,
//                            sqrt, abs, tanh, erf, expm1, log1p, pow
//   S::B  a truth value      gt, ge, lt, eq, isNaN (of V), lor; select(B, V, V)
//   S::U  a 64-bit integer   u(uint64_t), addU, mulU, xorU, shr
//   S::D  a double           unit53(U) = (z >> 11) * 2^-53, ltD(D, double)
//
// The reference interpreter instantiates it with Host<T> (plain numbers,
// below); codegen with an algebra whose values are LLVM IR values, so the
// compiled loops and the reference cannot drift apart. The order of
// operations is part of the definition: both sides round the same way.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_OPS_SCALAR_H
#define KILN_IR_OPS_SCALAR_H

#include "ir/Graph.h"
#include "llvm/ADT/ArrayRef.h"
#include <cassert>
#include <cmath>
#include <cstdint>

namespace kiln {
namespace scalar {

/// The algebra of host numbers: T is float or double.
template <typename T> struct Host {
  using V = T;
  using B = bool;
  using U = uint64_t;
  using D = double;
  V c(double x) const { return T(x); }
  V add(V a, V b) const { return a + b; }
  V sub(V a, V b) const { return a - b; }
  V mul(V a, V b) const { return a * b; }
  V div(V a, V b) const { return a / b; }
  V neg(V a) const { return -a; }
  V exp(V a) const { return std::exp(a); }
  V log(V a) const { return std::log(a); }
  V sqrt(V a) const { return std::sqrt(a); }
  V abs(V a) const { return std::abs(a); }
  V tanh(V a) const { return std::tanh(a); }
  V erf(V a) const { return std::erf(a); }
  V expm1(V a) const { return std::expm1(a); }
  V log1p(V a) const { return std::log1p(a); }
  V pow(V a, V b) const { return std::pow(a, b); }
  B gt(V a, V b) const { return a > b; }
  B ge(V a, V b) const { return a >= b; }
  B lt(V a, V b) const { return a < b; }
  B eq(V a, V b) const { return a == b; }
  B isNaN(V a) const { return std::isnan(a); }
  B lor(B a, B b) const { return a || b; }
  V select(B c, V a, V b) const { return c ? a : b; }
  U u(uint64_t x) const { return x; }
  U addU(U a, U b) const { return a + b; }
  U mulU(U a, U b) const { return a * b; }
  U xorU(U a, U b) const { return a ^ b; }
  U shr(U a, unsigned k) const { return a >> k; }
  D unit53(U z) const { return double(z >> 11) * 0x1.0p-53; }
  B ltD(D a, double b) const { return a < b; }
};

// Unary functions. Each takes its attributes from the node once; the call
// operator is the per-element function.
#define KILN_SCALAR_FN(Name, expr)                                             \
  struct Name {                                                                \
    explicit Name(const Node &) {}                                             \
    template <class S> typename S::V operator()(S &s, typename S::V a) const { \
      return expr;                                                             \
    }                                                                          \
  };
#define KILN_SCALAR_FN2(Name, expr)                                            \
  struct Name {                                                                \
    explicit Name(const Node &) {}                                             \
    template <class S>                                                         \
    typename S::V operator()(S &s, typename S::V a, typename S::V b) const {   \
      return expr;                                                             \
    }                                                                          \
  };

// neg: -a
KILN_SCALAR_FN(NegF, s.neg(a))
// exp: e^a
KILN_SCALAR_FN(ExpF, s.exp(a))
// log: natural logarithm (-inf at 0, NaN below, as in PyTorch).
KILN_SCALAR_FN(LogF, s.log(a))
// sqrt
KILN_SCALAR_FN(SqrtF, s.sqrt(a))
// abs
KILN_SCALAR_FN(AbsF, s.abs(a))
// tanh
KILN_SCALAR_FN(TanhF, s.tanh(a))
// sigmoid: 1 / (1 + e^-a)
KILN_SCALAR_FN(SigmoidF, s.div(s.c(1), s.add(s.c(1), s.exp(s.neg(a)))))
// relu: max(a, 0); NaN propagates.
KILN_SCALAR_FN(ReluF, s.select(s.lor(s.gt(a, s.c(0)), s.isNaN(a)), a, s.c(0)))
// gelu: a * Phi(a), PyTorch's default (exact, erf) form.
KILN_SCALAR_FN(GeluF, s.mul(s.mul(s.c(0.5), a),
                            s.add(s.c(1), s.erf(s.mul(a, s.c(M_SQRT1_2))))))
// softplus: log(1 + e^a), linear above 20 as torch.nn.functional.softplus.
KILN_SCALAR_FN(SoftplusF, s.select(s.gt(a, s.c(20)), a, s.log1p(s.exp(a))))
// erf
KILN_SCALAR_FN(ErfF, s.erf(a))
// step: a > 0 ? 1 : 0 (0 at 0 and for NaN)
KILN_SCALAR_FN(StepF, s.select(s.gt(a, s.c(0)), s.c(1), s.c(0)))
// stop_gradient: the identity; autodiff sends nothing through it.
KILN_SCALAR_FN(StopGradientF, a)

// add, sub, mul, div, pow
KILN_SCALAR_FN2(AddF, s.add(a, b))
KILN_SCALAR_FN2(SubF, s.sub(a, b))
KILN_SCALAR_FN2(MulF, s.mul(a, b))
KILN_SCALAR_FN2(DivF, s.div(a, b))
KILN_SCALAR_FN2(PowF, s.pow(a, b))
// maximum, minimum: NaN propagates, as torch.maximum.
KILN_SCALAR_FN2(MaximumF, s.select(s.lor(s.isNaN(a), s.gt(a, b)), a, b))
KILN_SCALAR_FN2(MinimumF, s.select(s.lor(s.isNaN(a), s.lt(a, b)), a, b))
// equal: a == b ? 1 : 0
KILN_SCALAR_FN2(EqualF, s.select(s.eq(a, b), s.c(1), s.c(0)))

#undef KILN_SCALAR_FN
#undef KILN_SCALAR_FN2

// leaky_relu {slope}: a >= 0 ? a : slope * a
struct LeakyReluF {
  double slope;
  explicit LeakyReluF(const Node &n) : slope(n.floatAttr("slope")) {}
  template <class S> typename S::V operator()(S &s, typename S::V a) const {
    return s.select(s.ge(a, s.c(0)), a, s.mul(s.c(slope), a));
  }
};
// elu {alpha}: a > 0 ? a : alpha * (e^a - 1)
struct EluF {
  double alpha;
  explicit EluF(const Node &n) : alpha(n.floatAttr("alpha")) {}
  template <class S> typename S::V operator()(S &s, typename S::V a) const {
    return s.select(s.gt(a, s.c(0)), a, s.mul(s.c(alpha), s.expm1(a)));
  }
};

/// Every elementwise op with its scalar function: X(Enum, Functor, arity).
#define KILN_FOR_EACH_SCALAR_OP(X)                                             \
  X(Neg, NegF, 1)                                                              \
  X(Exp, ExpF, 1)                                                              \
  X(Log, LogF, 1)                                                              \
  X(Sqrt, SqrtF, 1)                                                            \
  X(Abs, AbsF, 1)                                                              \
  X(Tanh, TanhF, 1)                                                            \
  X(Sigmoid, SigmoidF, 1)                                                      \
  X(Relu, ReluF, 1)                                                            \
  X(LeakyRelu, LeakyReluF, 1)                                                  \
  X(Elu, EluF, 1)                                                              \
  X(Gelu, GeluF, 1)                                                            \
  X(Softplus, SoftplusF, 1)                                                    \
  X(Erf, ErfF, 1)                                                              \
  X(Step, StepF, 1)                                                            \
  X(StopGradient, StopGradientF, 1)                                            \
  X(Add, AddF, 2)                                                              \
  X(Sub, SubF, 2)                                                              \
  X(Mul, MulF, 2)                                                              \
  X(Div, DivF, 2)                                                              \
  X(Pow, PowF, 2)                                                              \
  X(Maximum, MaximumF, 2)                                                      \
  X(Minimum, MinimumF, 2)                                                      \
  X(Equal, EqualF, 2)

/// n's scalar function applied to args (one per operand); n's op must be
/// in KILN_FOR_EACH_SCALAR_OP. For one application per node (codegen); the
/// interpreter maps each functor over whole buffers instead.
template <class S>
typename S::V apply(S &s, const Node &n, llvm::ArrayRef<typename S::V> args) {
  switch (n.op) {
#define X(E, F, A)                                                             \
  case Op::E:                                                                  \
    if constexpr (A == 1)                                                      \
      return F(n)(s, args[0]);                                                 \
    else                                                                       \
      return F(n)(s, args[0], args[1]);
    KILN_FOR_EACH_SCALAR_OP(X)
#undef X
  default:
    break;
  }
  assert(false && "not an op with a scalar function");
  return args[0];
}

/// splitmix64's finaliser, dropout's counter-based generator.
template <class S> typename S::U splitmix64(S &s, typename S::U z) {
  z = s.addU(z, s.u(0x9e3779b97f4a7c15ull));
  z = s.mulU(s.xorU(z, s.shr(z, 30)), s.u(0xbf58476d1ce4e5b9ull));
  z = s.mulU(s.xorU(z, s.shr(z, 27)), s.u(0x94d049bb133111ebull));
  return s.xorU(z, s.shr(z, 31));
}

/// Training-mode dropout of element i, whose value is x, with the op's key
/// for this step (dropoutKey): zero with probability p, else x / (1 - p).
/// Element i draws u = (splitmix64(key ^ i) >> 11) * 2^-53.
template <class S>
typename S::V dropout(S &s, typename S::V x, typename S::U key, typename S::U i,
                      double p) {
  typename S::D u = s.unit53(splitmix64(s, s.xorU(key, i)));
  return s.select(s.ltD(u, p), s.c(0), s.mul(x, s.c(1 / (1 - p))));
}

} // namespace scalar
} // namespace kiln

#endif
