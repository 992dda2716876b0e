//===- IndexMap.cpp - Strided maps of broadcast, transpose, slice ---------===//
#include "ir/IndexMap.h"
#include "ir/OpRules.h"

using namespace kiln;

std::vector<int64_t> StridedMap::offsets() const {
  return stridedOffsets(shape, strides, base);
}

std::optional<StridedMap> kiln::stridedMapOf(const Node &n) {
  StridedMap m;
  m.shape = n.type.shape;
  const Shape &in = n.operands.empty() ? Shape() : n.operands[0]->type.shape;
  Shape inStrides = stridesOf(in);
  switch (n.op) {
  case Op::Broadcast: {
    // NumPy broadcasting: leading axes are new, size-1 axes repeat.
    m.strides.assign(m.shape.size(), 0);
    size_t lead = m.shape.size() - in.size();
    for (size_t i = 0; i < in.size(); ++i)
      m.strides[lead + i] = in[i] == 1 ? 0 : inStrides[i];
    return m;
  }
  case Op::Transpose:
    for (int64_t p : n.intsAttr("perm"))
      m.strides.push_back(inStrides[p]);
    return m;
  case Op::Slice: {
    auto begin = n.intsAttr("begin"), step = n.intsAttr("step");
    for (size_t i = 0; i < in.size(); ++i) {
      m.base += begin[i] * inStrides[i];
      // An axis of one element has no stride to take; on longer ones the
      // step is below the input's extent, so the product fits.
      m.strides.push_back(m.shape[i] == 1 ? 0 : step[i] * inStrides[i]);
    }
    return m;
  }
  case Op::Reshape:
  case Op::StopGradient:
    m.strides = stridesOf(m.shape);
    return m;
  default:
    return std::nullopt;
  }
}
