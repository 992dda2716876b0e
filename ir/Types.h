//===- Types.h - Element types and static shapes ---------------*- C++ -*-===//
//
// Every IR value has a dtype and a static shape. Shapes are checked for
// overflow wherever they are built, because they come from user input.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_TYPES_H
#define KILN_IR_TYPES_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"
#include <cstdint>
#include <optional>
#include <string>

namespace kiln {

/// Element types. F64 appears only in the reference interpreter's float64
/// mode and in files; the language has f32 and i32.
enum class DType { F32, F64, I32, I64 };

llvm::StringRef dtypeName(DType t);
std::optional<DType> parseDType(llvm::StringRef s);
inline bool isFloat(DType t) { return t == DType::F32 || t == DType::F64; }
size_t dtypeSize(DType t);

using Shape = llvm::SmallVector<int64_t, 4>;

/// Elements in a shape, or nullopt if the product overflows int64.
std::optional<int64_t> numElements(llvm::ArrayRef<int64_t> shape);

/// The largest tensor Kiln accepts, in elements (2^40: 4 TiB of f32).
constexpr int64_t kMaxElements = int64_t(1) << 40;

/// Prints `[2,3]`.
std::string shapeStr(llvm::ArrayRef<int64_t> shape);

struct TensorType {
  DType dtype = DType::F32;
  Shape shape;
  bool operator==(const TensorType &o) const {
    return dtype == o.dtype && shape == o.shape;
  }
  bool operator!=(const TensorType &o) const { return !(*this == o); }
  int64_t rank() const { return shape.size(); }
  /// Prints `f32[2,3]`.
  std::string str() const;
};

/// NumPy broadcasting of two shapes, or nullopt if they do not broadcast.
std::optional<Shape> broadcastShapes(llvm::ArrayRef<int64_t> a,
                                     llvm::ArrayRef<int64_t> b);

} // namespace kiln

#endif
