//===- Tensor.h - Host tensors for the interpreter and files ----*- C++ -*-===//
//
// A dense, row-major tensor with a dtype, owning its bytes. Each op's
// reference evaluation (ir/ops) computes on these, so they live in the IR;
// the interpreter runs those evaluations and safetensors files read into and
// write from them.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_TENSOR_H
#define KILN_IR_TENSOR_H

#include "ir/Types.h"
#include "llvm/Support/Error.h"
#include <cassert>
#include <vector>

namespace kiln {

class Tensor {
public:
  Tensor() = default;
  /// A zero-filled tensor. The shape must have been validated (numElements).
  Tensor(DType dtype, llvm::ArrayRef<int64_t> shape);

  DType dtype() const { return dtype_; }
  llvm::ArrayRef<int64_t> shape() const { return shape_; }
  int64_t rank() const { return shape_.size(); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return numel_ * dtypeSize(dtype_); }
  TensorType type() const { return {dtype_, Shape(shape_)}; }

  template <typename T> T *data() {
    assert(matches<T>() && "tensor accessed with the wrong element type");
    return reinterpret_cast<T *>(storage_.data());
  }
  template <typename T> const T *data() const {
    assert(matches<T>() && "tensor accessed with the wrong element type");
    return reinterpret_cast<const T *>(storage_.data());
  }
  void *raw() { return storage_.data(); }
  const void *raw() const { return storage_.data(); }

  /// Element i converted to double, whatever the dtype.
  double at(int64_t i) const;
  /// A copy converted to another dtype.
  Tensor cast(DType to) const;
  /// The index of the first element that `to` cannot hold (an integer
  /// outside its range, a finite float beyond f32's), or nullopt if cast(to)
  /// keeps every value.
  std::optional<int64_t> firstOutOfRange(DType to) const;
  /// Element i as text, exactly for integers ("1099511627776").
  std::string valueStr(int64_t i) const;
  /// Fills from a list of values (converted to the dtype).
  static Tensor fromValues(DType dtype, llvm::ArrayRef<int64_t> shape,
                           llvm::ArrayRef<double> values);

private:
  template <typename T> bool matches() const;
  DType dtype_ = DType::F32;
  Shape shape_;
  int64_t numel_ = 0;
  std::vector<uint64_t> storage_; ///< 8-byte aligned bytes.
};

template <typename T> bool Tensor::matches() const {
  if constexpr (std::is_same_v<T, float>)
    return dtype_ == DType::F32;
  if constexpr (std::is_same_v<T, double>)
    return dtype_ == DType::F64;
  if constexpr (std::is_same_v<T, int32_t>)
    return dtype_ == DType::I32;
  if constexpr (std::is_same_v<T, int64_t>)
    return dtype_ == DType::I64;
  return false;
}

/// An error unless `bytes` fit in the memory this process may use
/// (availableMemory: physical memory, RLIMIT_AS, the cgroup's limit); `what`
/// names what needs them.
llvm::Error checkMemory(uint64_t bytes, const llvm::Twine &what);

/// The dtype that holds C++ type T.
template <typename T> constexpr DType dtypeOf() {
  if constexpr (std::is_same_v<T, float>)
    return DType::F32;
  if constexpr (std::is_same_v<T, double>)
    return DType::F64;
  if constexpr (std::is_same_v<T, int32_t>)
    return DType::I32;
  return DType::I64;
}

} // namespace kiln

#endif
