//===- Shape.cpp - broadcast, reshape, transpose, slice, concat -----------===//
//
// Data movement ops. They work on any dtype: evaluation gathers elements by
// offsets computed from strides, so it never looks at the values.
//
//===----------------------------------------------------------------------===//
#include "ir/IndexMap.h"
#include "ir/OpRules.h"
#include <cstring>

using namespace kiln;

namespace {

// broadcast {shape}: NumPy rules, operand aligned to the right.
llvm::Expected<TensorType> shapeBroadcast(const Node &n) {
  auto shape = n.getInts("shape");
  if (!shape)
    return shape.takeError();
  if (auto e = checkShape(n, *shape))
    return std::move(e);
  const TensorType &a = n.operands[0]->type;
  auto b = broadcastShapes(a.shape, *shape);
  if (a.rank() > int64_t(shape->size()) || !b || *b != *shape)
    return makeError("cannot broadcast " + a.str() + " to " + shapeStr(*shape));
  return TensorType{a.dtype, *shape};
}

// broadcast, transpose and slice read through their strided map.
template <typename T>
void evalStrided(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                 EvalContext &) {
  gatherElements(*in[0], out, stridedMapOf(n)->offsets());
}

// reshape {shape}: same element count.
llvm::Expected<TensorType> shapeReshape(const Node &n) {
  auto shape = n.getInts("shape");
  if (!shape)
    return shape.takeError();
  if (auto e = checkShape(n, *shape))
    return std::move(e);
  const TensorType &a = n.operands[0]->type;
  if (*numElements(*shape) != *numElements(a.shape))
    return makeError("cannot reshape " + a.str() + " to " + shapeStr(*shape) +
                     ": the element counts differ");
  return TensorType{a.dtype, *shape};
}

template <typename T>
void evalReshape(const Node &, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                 EvalContext &) {
  std::memcpy(out.raw(), in[0]->raw(), out.nbytes());
}

// transpose {perm}: out.shape[i] = in.shape[perm[i]].
llvm::Expected<TensorType> shapeTranspose(const Node &n) {
  auto perm = n.getInts("perm");
  if (!perm)
    return perm.takeError();
  const TensorType &a = n.operands[0]->type;
  Shape sorted(*perm);
  llvm::sort(sorted);
  bool ok = int64_t(perm->size()) == a.rank();
  for (int64_t i = 0; ok && i < a.rank(); ++i)
    ok = sorted[i] == i;
  if (!ok)
    return makeError("transpose permutation " + shapeStr(*perm) +
                     " does not permute the axes of " + a.str());
  TensorType t{a.dtype, {}};
  for (int64_t p : *perm)
    t.shape.push_back(a.shape[p]);
  return t;
}

// slice {begin, end, step}: one entry per axis, 0 <= begin < end <= dim.
llvm::Expected<TensorType> shapeSlice(const Node &n) {
  auto begin = n.getInts("begin");
  auto end = n.getInts("end");
  auto step = n.getInts("step");
  if (!begin || !end || !step)
    return llvm::joinErrors(
        llvm::joinErrors(begin.takeError(), end.takeError()), step.takeError());
  const TensorType &a = n.operands[0]->type;
  if (int64_t(begin->size()) != a.rank() || int64_t(end->size()) != a.rank() ||
      int64_t(step->size()) != a.rank())
    return makeError("slice of " + a.str() + " needs begin, end and step for " +
                     llvm::Twine(a.rank()) + " axes");
  TensorType t{a.dtype, {}};
  for (int64_t i = 0; i < a.rank(); ++i) {
    int64_t b = (*begin)[i], e = (*end)[i], s = (*step)[i];
    if (b < 0 || e > a.shape[i] || b >= e || s < 1)
      return makeError("slice " + llvm::Twine(b) + ":" + llvm::Twine(e) + ":" +
                       llvm::Twine(s) + " of axis " + llvm::Twine(i) + " of " +
                       a.str() + " is empty or out of range");
    t.shape.push_back((e - b - 1) / s + 1); // no overflow for any step
  }
  return t;
}

// concat {axis}: operands agree on every other axis.
llvm::Expected<TensorType> shapeConcat(const Node &n) {
  if (n.operands.empty())
    return makeError("'concat' needs at least one operand");
  auto axisAttr = n.getInt("axis");
  if (!axisAttr)
    return axisAttr.takeError();
  TensorType t = n.operands[0]->type;
  auto axis = normaliseAxis(n, *axisAttr, t.rank());
  if (!axis)
    return axis.takeError();
  for (size_t i = 1; i < n.operands.size(); ++i) {
    const TensorType &o = n.operands[i]->type;
    bool ok = o.dtype == t.dtype && o.rank() == t.rank();
    for (int64_t d = 0; ok && d < t.rank(); ++d)
      ok = d == *axis || o.shape[d] == t.shape[d];
    if (!ok)
      return makeError("cannot concatenate " + n.operands[0]->type.str() +
                       " and " + o.str() + " along axis " + llvm::Twine(*axis));
    if (__builtin_add_overflow(t.shape[*axis], o.shape[*axis], &t.shape[*axis]))
      return makeError("'concat' of " + llvm::Twine(n.operands.size()) +
                       " operands overflows along axis " + llvm::Twine(*axis));
  }
  return t;
}

template <typename T>
void evalConcat(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
                EvalContext &) {
  int64_t axis =
      llvm::cantFail(normaliseAxis(n, n.intAttr("axis"), out.rank()));
  // Rows above the axis; each operand contributes a contiguous chunk per row.
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= out.shape()[d];
  auto *dst = static_cast<char *>(out.raw());
  for (int64_t r = 0; r < outer; ++r)
    for (const Tensor *t : in) {
      size_t chunk = t->nbytes() / outer;
      std::memcpy(dst, static_cast<const char *>(t->raw()) + r * chunk, chunk);
      dst += chunk;
    }
}

// pad {low, high, interior}: zeros around (low, high) and between (interior)
// the elements of each axis, as XLA's Pad; the adjoint of a strided slice.
llvm::Expected<TensorType> shapePad(const Node &n) {
  auto low = n.getInts("low");
  auto high = n.getInts("high");
  auto interior = n.getInts("interior");
  if (!low || !high || !interior)
    return llvm::joinErrors(llvm::joinErrors(low.takeError(), high.takeError()),
                            interior.takeError());
  const TensorType &a = n.operands[0]->type;
  if (int64_t(low->size()) != a.rank() || int64_t(high->size()) != a.rank() ||
      int64_t(interior->size()) != a.rank())
    return makeError("pad of " + a.str() +
                     " needs low, high and interior for " +
                     llvm::Twine(a.rank()) + " axes");
  TensorType t{a.dtype, {}};
  for (int64_t i = 0; i < a.rank(); ++i) {
    int64_t lo = (*low)[i], hi = (*high)[i], in = (*interior)[i];
    if (lo < 0 || hi < 0 || in < 0)
      return makeError("pad amounts must be at least 0");
    // Beyond 2^40 no amount gives a shape; bounded, `interior + 1` fits.
    if (lo > kMaxElements || hi > kMaxElements || in > kMaxElements)
      return makeError("pad of " + a.str() + " by more than 2^40");
    int64_t d = a.shape[i], size = 0;
    if (__builtin_mul_overflow(d - 1, in, &size) ||
        __builtin_add_overflow(size, d, &size) ||
        __builtin_add_overflow(size, lo, &size) ||
        __builtin_add_overflow(size, hi, &size))
      return makeError("pad of " + a.str() + " overflows");
    t.shape.push_back(size);
  }
  if (auto e = checkShape(n, t.shape))
    return std::move(e);
  return t;
}

template <typename T>
void evalPad(const Node &n, llvm::ArrayRef<const Tensor *> in, Tensor &out,
             EvalContext &) {
  Shape outStrides = stridesOf(out.shape()), strides;
  auto low = n.intsAttr("low"), interior = n.intsAttr("interior");
  int64_t base = 0;
  for (size_t i = 0; i < outStrides.size(); ++i) {
    base += low[i] * outStrides[i];
    strides.push_back((interior[i] + 1) * outStrides[i]);
  }
  std::vector<int64_t> dest = stridedOffsets(in[0]->shape(), strides, base);
  size_t elem = dtypeSize(out.dtype());
  auto *src = static_cast<const char *>(in[0]->raw());
  auto *dst = static_cast<char *>(out.raw());
  for (size_t i = 0; i < dest.size(); ++i)
    std::memcpy(dst + dest[i] * elem, src + i * elem, elem);
}

//===-- Gradient rules ---------------------------------------------------===//
using Operands = llvm::MutableArrayRef<Node *>;

void gradBroadcast(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = b.sumTo(g, n.operands[0]->type.shape);
}
void gradReshape(GradBuilder &b, Node &n, Node *g, Operands d) {
  d[0] = b.reshape(g, n.operands[0]->type.shape);
}
void gradTranspose(GradBuilder &b, Node &n, Node *g, Operands d) {
  auto perm = n.intsAttr("perm");
  llvm::SmallVector<int64_t, 4> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i)
    inverse[perm[i]] = i;
  d[0] = b.transpose(g, inverse);
}
// slice -> pad with zeros where the slice did not read, between strided
// elements too.
void gradSlice(GradBuilder &b, Node &n, Node *g, Operands d) {
  auto begin = n.intsAttr("begin"), step = n.intsAttr("step");
  llvm::SmallVector<int64_t, 4> high, interior;
  const Shape &in = n.operands[0]->type.shape;
  for (size_t i = 0; i < in.size(); ++i) {
    int64_t last = begin[i] + (n.type.shape[i] - 1) * step[i];
    high.push_back(in[i] - 1 - last);
    // One element read: no gaps between elements, whatever the step.
    interior.push_back(n.type.shape[i] == 1 ? 0 : step[i] - 1);
  }
  d[0] = b.op(Op::Pad, {g},
              {{"low", begin}, {"high", high}, {"interior", interior}});
}
// pad -> the strided slice that reads the original elements back.
void gradPad(GradBuilder &b, Node &n, Node *g, Operands d) {
  auto low = n.intsAttr("low"), interior = n.intsAttr("interior");
  llvm::SmallVector<int64_t, 4> end, step;
  const Shape &in = n.operands[0]->type.shape;
  for (size_t i = 0; i < in.size(); ++i) {
    step.push_back(interior[i] + 1);
    end.push_back(low[i] + (in[i] - 1) * step.back() + 1);
  }
  d[0] = b.op(Op::Slice, {g}, {{"begin", low}, {"end", end}, {"step", step}});
}
// concat -> one slice per operand.
void gradConcat(GradBuilder &b, Node &n, Node *g, Operands d) {
  int64_t axis =
      llvm::cantFail(normaliseAxis(n, n.intAttr("axis"), n.type.rank()));
  int64_t offset = 0;
  for (size_t i = 0; i < n.operands.size(); ++i) {
    const Shape &s = n.operands[i]->type.shape;
    llvm::SmallVector<int64_t, 4> begin(s.size(), 0), end(s.begin(), s.end()),
        step(s.size(), 1);
    begin[axis] = offset;
    end[axis] = offset + s[axis];
    offset += s[axis];
    d[i] =
        b.op(Op::Slice, {g}, {{"begin", begin}, {"end", end}, {"step", step}});
  }
}

} // namespace

void kiln::registerShapeRules(RuleTable &t) {
  t[size_t(Op::Broadcast)] = {shapeBroadcast, KILN_EVAL(evalStrided)};
  t[size_t(Op::Reshape)] = {shapeReshape, KILN_EVAL(evalReshape)};
  t[size_t(Op::Transpose)] = {shapeTranspose, KILN_EVAL(evalStrided)};
  t[size_t(Op::Slice)] = {shapeSlice, KILN_EVAL(evalStrided)};
  t[size_t(Op::Concat)] = {shapeConcat, KILN_EVAL(evalConcat)};
  t[size_t(Op::Pad)] = {shapePad, KILN_EVAL(evalPad)};
  t[size_t(Op::Broadcast)].grad = gradBroadcast;
  t[size_t(Op::Reshape)].grad = gradReshape;
  t[size_t(Op::Transpose)].grad = gradTranspose;
  t[size_t(Op::Slice)].grad = gradSlice;
  t[size_t(Op::Pad)].grad = gradPad;
  t[size_t(Op::Concat)].grad = gradConcat;
}
