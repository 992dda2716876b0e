//===- Elementwise.cpp - Elementwise ops ----------------------------------===//
//
// Each elementwise op is a scalar function, written once in ir/ops/Scalar.h
// over a scalar algebra: the reference interpreter maps it over the buffer
// with Eigen on host numbers, and codegen instantiates it on LLVM values.
// Binary operands have equal shapes: the frontend makes broadcasting
// explicit. Here: shape rules, evaluation and gradient rules.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"
#include "ir/ops/Scalar.h"
#include <Eigen/Core>
#include <cmath>

using namespace kiln;
using namespace kiln::scalar;

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
  scalar::Host<T> s;
  Vec<T>(out.data<T>(), out.numel()) =
      CVec<T>(in[0]->data<T>(), out.numel()).unaryExpr([&](T x) {
        return f(s, x);
      });
}

template <typename F, typename T>
void evalBinary(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                EvalContext &) {
  F f(n);
  scalar::Host<T> s;
  Vec<T>(out.data<T>(), out.numel()) =
      CVec<T>(in[0]->data<T>(), out.numel())
          .binaryExpr(CVec<T>(in[1]->data<T>(), out.numel()),
                      [&](T a, T b) { return f(s, a, b); });
}

template <typename F, int Arity> void registerScalar(RuleTable &t, Op op) {
  if constexpr (Arity == 1)
    t[size_t(op)] = {shapeUnary, &evalUnary<F, float>, &evalUnary<F, double>};
  else
    t[size_t(op)] = {shapeBinary, &evalBinary<F, float>,
                     &evalBinary<F, double>};
}

//===-- Gradient rules ---------------------------------------------------===//
// Non-differentiable points follow PyTorch: relu'(0) = 0, abs'(0) = 0,
// leaky_relu'(0) = slope, elu'(0) = alpha, and maximum/minimum split the
// gradient equally between tied operands.

using Operands = llvm::MutableArrayRef<Node *>;
Node *x0(Node &n) { return n.operands[0]; }

void gradNeg(GradBuilder &b, Node &n, Node *g, Operands d) { d[0] = b.neg(g); }
void gradExp(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = b.mul(g, &n);
}
void gradLog(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = b.div(g, x0(n));
}
void gradSqrt(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = b.div(g, b.scale(&n, 2));
}
void gradAbs(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *sign = b.sub(b.op(Op::Step, {x0(n)}), b.op(Op::Step, {b.neg(x0(n))}));
  d[0] = b.mul(g, sign);
}
void gradTanh(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *one = b.constant(1, n.type.shape);
  d[0] = b.mul(g, b.sub(one, b.mul(&n, &n)));
}
void gradSigmoid(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *one = b.constant(1, n.type.shape);
  d[0] = b.mul(g, b.mul(&n, b.sub(one, &n)));
}
void gradRelu(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = b.mul(g, b.op(Op::Step, {x0(n)}));
}
/// g * (x > 0 ? 1 : other) for leaky_relu and elu.
Node *piecewise(GradBuilder &b, Node &n, Node *g, Node *other) {
  Node *pos = b.op(Op::Step, {x0(n)});
  Node *negPart = b.sub(b.constant(1, n.type.shape), pos);
  return b.mul(g, b.add(pos, b.mul(negPart, other)));
}
void gradLeakyRelu(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = piecewise(b, n, g, b.constant(n.floatAttr("slope"), n.type.shape));
}
void gradElu(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] =
      piecewise(b, n, g, b.scale(b.op(Op::Exp, {x0(n)}), n.floatAttr("alpha")));
}
void gradGelu(GradBuilder &b, Node &n, Node *g, Operands d) {
  // d/dx x Phi(x) = Phi(x) + x phi(x)
  Node *x = x0(n);
  Node *cdf = b.scale(b.add(b.constant(1, n.type.shape),
                            b.op(Op::Erf, {b.scale(x, M_SQRT1_2)})),
                      0.5);
  Node *pdf = b.scale(b.op(Op::Exp, {b.scale(b.mul(x, x), -0.5)}),
                      0.3989422804014327); // 1 / sqrt(2 pi)
  d[0] = b.mul(g, b.add(cdf, b.mul(x, pdf)));
}
void gradSoftplus(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = b.mul(g, b.op(Op::Sigmoid, {x0(n)}));
}
void gradErf(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *x = x0(n);
  d[0] = b.mul(g, b.scale(b.op(Op::Exp, {b.neg(b.mul(x, x))}),
                          1.1283791670955126)); // 2 / sqrt(pi)
}

void gradAdd(GradBuilder &b, Node &n, Node *g, Operands d) { d[0] = d[1] = g; }
void gradSub(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = g;
  d[1] = b.neg(g);
}
void gradMul(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = b.mul(g, n.operands[1]);
  d[1] = b.mul(g, n.operands[0]);
}
void gradDiv(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = b.div(g, n.operands[1]);
  d[1] = b.neg(b.div(b.mul(g, &n), n.operands[1]));
}
void gradPow(GradBuilder &b, Node &n, Node *g, Operands d) {
  Node *a = n.operands[0], *e = n.operands[1];
  Node *em1 = b.sub(e, b.constant(1, n.type.shape));
  d[0] = b.mul(g, b.mul(e, b.op(Op::Pow, {a, em1})));
  d[1] = b.mul(g, b.mul(&n, b.op(Op::Log, {a})));
}
/// maximum (max = true) and minimum: the winner takes g, a tie splits it.
void gradExtremum(GradBuilder &b, Node &n, Node *g, Operands d, bool max) {
  Node *a = n.operands[0], *c = n.operands[1];
  Node *half = b.scale(b.op(Op::Equal, {a, c}), 0.5);
  Node *aWins = b.op(Op::Step, {max ? b.sub(a, c) : b.sub(c, a)});
  Node *cWins = b.op(Op::Step, {max ? b.sub(c, a) : b.sub(a, c)});
  d[0] = b.mul(g, b.add(aWins, half));
  d[1] = b.mul(g, b.add(cWins, half));
}
void gradMaximum(GradBuilder &b, Node &n, Node *g, Operands d) {
  gradExtremum(b, n, g, d, true);
}
void gradMinimum(GradBuilder &b, Node &n, Node *g, Operands d) {
  gradExtremum(b, n, g, d, false);
}

} // namespace

#define GRAD(E, F) t[size_t(Op::E)].grad = F

void kiln::registerElementwiseRules(RuleTable &t) {
  // The scalar functions of ir/ops/Scalar.h, mapped over whole buffers.
#define X(E, F, A) registerScalar<F, A>(t, Op::E);
  KILN_FOR_EACH_SCALAR_OP(X)
#undef X
  GRAD(Neg, gradNeg);
  GRAD(Exp, gradExp);
  GRAD(Log, gradLog);
  GRAD(Sqrt, gradSqrt);
  GRAD(Abs, gradAbs);
  GRAD(Tanh, gradTanh);
  GRAD(Sigmoid, gradSigmoid);
  GRAD(Relu, gradRelu);
  GRAD(LeakyRelu, gradLeakyRelu);
  GRAD(Elu, gradElu);
  GRAD(Gelu, gradGelu);
  GRAD(Softplus, gradSoftplus);
  GRAD(Erf, gradErf);
  GRAD(Step, noGradient);
  GRAD(StopGradient, noGradient);
  GRAD(Add, gradAdd);
  GRAD(Sub, gradSub);
  GRAD(Mul, gradMul);
  GRAD(Div, gradDiv);
  GRAD(Pow, gradPow);
  GRAD(Maximum, gradMaximum);
  GRAD(Minimum, gradMinimum);
  GRAD(Equal, noGradient);
}
