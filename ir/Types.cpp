//===- Types.cpp - Element types and static shapes ------------------------===//
//
// Names, sizes and broadcasting for dtypes and shapes.
//
//===----------------------------------------------------------------------===//
#include "ir/Types.h"
#include <algorithm>

using namespace kiln;

llvm::StringRef kiln::dtypeName(DType t) {
  switch (t) {
  case DType::F32:
    return "f32";
  case DType::F64:
    return "f64";
  case DType::I32:
    return "i32";
  case DType::I64:
    return "i64";
  }
  return "?";
}

std::optional<DType> kiln::parseDType(llvm::StringRef s) {
  if (s == "f32")
    return DType::F32;
  if (s == "f64")
    return DType::F64;
  if (s == "i32")
    return DType::I32;
  if (s == "i64")
    return DType::I64;
  return std::nullopt;
}

size_t kiln::dtypeSize(DType t) {
  return (t == DType::F64 || t == DType::I64) ? 8 : 4;
}

std::optional<int64_t> kiln::numElements(llvm::ArrayRef<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      return std::nullopt;
  }
  return n;
}

std::string kiln::shapeStr(llvm::ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::string TensorType::str() const {
  return dtypeName(dtype).str() + shapeStr(shape);
}

std::optional<Shape> kiln::broadcastShapes(llvm::ArrayRef<int64_t> a,
                                           llvm::ArrayRef<int64_t> b) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      return std::nullopt;
    out[i] = da == 1 ? db : da;
  }
  return out;
}
