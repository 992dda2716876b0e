//===- OpRules.cpp - The table of per-op rules ----------------------------===//
//
// Collects every family's rules into one table indexed by Op, and the small
// helpers the shape rules share.
//
//===----------------------------------------------------------------------===//
#include "ir/OpRules.h"

using namespace kiln;

const OpRules &kiln::opRules(Op op) {
  static const RuleTable table = [] {
    RuleTable t{};
    registerLeafRules(t);
    registerElementwiseRules(t);
    registerReduceRules(t);
    registerShapeRules(t);
    registerLinalgRules(t);
    registerConvRules(t);
    registerNetworkRules(t);
    registerLossRules(t);
    registerFusedRules(t);
    return t;
  }();
  return table[size_t(op)];
}

llvm::Expected<TensorType> kiln::sameAsOperand(const Node &n) {
  return n.operands[0]->type;
}

llvm::Expected<int64_t> kiln::normaliseAxis(const Node &n, int64_t axis,
                                            int64_t rank) {
  if (axis < -rank || axis >= rank)
    return makeError("axis " + llvm::Twine(axis) + " is out of range for '" +
                     n.info().mnemonic + "' of a rank-" + llvm::Twine(rank) +
                     " tensor");
  return axis < 0 ? axis + rank : axis;
}

llvm::Error kiln::expectFloat(const Node &n, unsigned i) {
  if (!isFloat(n.operands[i]->type.dtype))
    return makeError("'" + n.info().mnemonic + "' needs a float operand, got " +
                     n.operands[i]->type.str());
  return llvm::Error::success();
}

llvm::Error kiln::expectRank(const Node &n, unsigned i, int64_t rank) {
  if (n.operands[i]->type.rank() != rank)
    return makeError("'" + n.info().mnemonic + "' needs a rank-" +
                     llvm::Twine(rank) + " operand, got " +
                     n.operands[i]->type.str());
  return llvm::Error::success();
}

llvm::Error kiln::checkShape(const Node &n, llvm::ArrayRef<int64_t> shape) {
  // A negative dimension first: numElements has no product for it either.
  for (int64_t d : shape)
    if (d < 1)
      return makeError("'" + n.info().mnemonic + "' shape " + shapeStr(shape) +
                       " has a dimension below 1");
  auto numel = numElements(shape);
  if (!numel || *numel > kMaxElements)
    return makeError("'" + n.info().mnemonic + "' shape " + shapeStr(shape) +
                     " has too many elements");
  return llvm::Error::success();
}

Shape kiln::stridesOf(llvm::ArrayRef<int64_t> shape) {
  Shape s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

std::vector<int64_t> kiln::stridedOffsets(llvm::ArrayRef<int64_t> shape,
                                          llvm::ArrayRef<int64_t> strides,
                                          int64_t base) {
  int64_t n = *numElements(shape);
  std::vector<int64_t> out(n);
  Shape idx(shape.size(), 0);
  int64_t off = base;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = off;
    // Odometer increment, innermost axis first.
    for (size_t a = shape.size(); a-- > 0;) {
      off += strides[a];
      if (++idx[a] < shape[a])
        break;
      off -= strides[a] * shape[a];
      idx[a] = 0;
    }
  }
  return out;
}

void kiln::gatherElements(const Tensor &src, Tensor &out,
                          llvm::ArrayRef<int64_t> offsets) {
  if (dtypeSize(src.dtype()) == 8) {
    auto *s = static_cast<const uint64_t *>(src.raw());
    auto *d = static_cast<uint64_t *>(out.raw());
    for (size_t i = 0; i < offsets.size(); ++i)
      d[i] = s[offsets[i]];
  } else {
    auto *s = static_cast<const uint32_t *>(src.raw());
    auto *d = static_cast<uint32_t *>(out.raw());
    for (size_t i = 0; i < offsets.size(); ++i)
      d[i] = s[offsets[i]];
  }
}
