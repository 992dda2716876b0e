//===- Leaf.cpp - Inputs, parameters, state and constants -----------------===//
//
// Leaves carry their own type. Inputs, parameters and state are named and
// take their values from the run's bindings; constants are splats.
//
//===----------------------------------------------------------------------===//
#include "ir/Initializers.h"
#include "ir/OpRules.h"

using namespace kiln;

namespace {

// input "x", param "fc1.w" {init, ...}, state "bn.running_mean" {init}.
llvm::Expected<TensorType> shapeNamedLeaf(const Node &n) {
  auto name = n.getString("name");
  if (!name)
    return name.takeError();
  if (name->empty())
    return makeError("'" + n.info().mnemonic + "' needs a non-empty name");
  if (auto e = checkShape(n, n.type.shape))
    return std::move(e);
  if (n.op == Op::Input)
    return n.type;
  if (!isFloat(n.type.dtype))
    return makeError("'" + n.info().mnemonic + "' must be a float tensor");
  if (auto e = validateInit(n))
    return std::move(e);
  return n.type;
}

template <typename T>
void evalNamedLeaf(const Node &n, llvm::ArrayRef<const Tensor *>, Tensor &out,
                   EvalContext &ctx) {
  std::string name = n.stringAttr("name");
  auto it = ctx.leaves ? ctx.leaves->find(name)
                       : llvm::StringMap<Tensor>::const_iterator();
  if (!ctx.leaves || it == ctx.leaves->end()) {
    ctx.fail("no value for " + n.info().mnemonic + " '" + name + "'");
    return;
  }
  const Tensor &v = it->second;
  if (v.shape() != llvm::ArrayRef<int64_t>(n.type.shape)) {
    ctx.fail(n.info().mnemonic + " '" + name + "' must have shape " +
             shapeStr(n.type.shape) + ", got " + shapeStr(v.shape()));
    return;
  }
  out = v.cast(out.dtype());
}

// constant {value}: a splat.
llvm::Expected<TensorType> shapeConstant(const Node &n) {
  auto v = n.getFloat("value");
  if (!v)
    return v.takeError();
  if (auto e = checkShape(n, n.type.shape))
    return std::move(e);
  return n.type;
}

template <typename T>
void evalConstant(const Node &n, llvm::ArrayRef<const Tensor *>, Tensor &out,
                  EvalContext &) {
  double v = n.floatAttr("value");
  if (out.dtype() == DType::I32)
    std::fill_n(out.data<int32_t>(), out.numel(), int32_t(v));
  else
    std::fill_n(out.data<T>(), out.numel(), T(v));
}

} // namespace

void kiln::registerLeafRules(RuleTable &t) {
  t[size_t(Op::Input)] = {shapeNamedLeaf, KILN_EVAL(evalNamedLeaf)};
  t[size_t(Op::Param)] = {shapeNamedLeaf, KILN_EVAL(evalNamedLeaf)};
  t[size_t(Op::State)] = {shapeNamedLeaf, KILN_EVAL(evalNamedLeaf)};
  t[size_t(Op::Constant)] = {shapeConstant, KILN_EVAL(evalConstant)};
  // Leaves end the backward walk: autodiff reads their gradients.
  for (Op op : {Op::Input, Op::Param, Op::State, Op::Constant})
    t[size_t(op)].grad = noGradient;
}
