//===- Tensor.cpp - Host tensors ------------------------------------------===//
//
// Allocation, conversion and element access for Tensor.
//
//===----------------------------------------------------------------------===//
#include "ir/Tensor.h"
#include "support/Files.h"
#include <cmath>
#include <cstdio>
#include <limits>
#include <unistd.h>

using namespace kiln;

Tensor::Tensor(DType dtype, llvm::ArrayRef<int64_t> shape)
    : dtype_(dtype), shape_(shape.begin(), shape.end()) {
  auto n = numElements(shape);
  assert(n && "tensor shape overflows");
  numel_ = *n;
  storage_.assign((nbytes() + 7) / 8, 0);
}

double Tensor::at(int64_t i) const {
  switch (dtype_) {
  case DType::F32:
    return data<float>()[i];
  case DType::F64:
    return data<double>()[i];
  case DType::I32:
    return data<int32_t>()[i];
  case DType::I64:
    return double(data<int64_t>()[i]);
  }
  return 0;
}

template <typename T> static void fill(Tensor &t, llvm::ArrayRef<double> v) {
  T *p = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = static_cast<T>(v[i]);
}

Tensor Tensor::fromValues(DType dtype, llvm::ArrayRef<int64_t> shape,
                          llvm::ArrayRef<double> values) {
  Tensor t(dtype, shape);
  assert(int64_t(values.size()) == t.numel() && "value count != numel");
  switch (dtype) {
  case DType::F32:
    fill<float>(t, values);
    break;
  case DType::F64:
    fill<double>(t, values);
    break;
  case DType::I32:
    fill<int32_t>(t, values);
    break;
  case DType::I64:
    fill<int64_t>(t, values);
    break;
  }
  return t;
}

Tensor Tensor::cast(DType to) const {
  if (to == dtype_)
    return *this;
  std::vector<double> v(numel_);
  for (int64_t i = 0; i < numel_; ++i)
    v[i] = at(i);
  return fromValues(to, shape_, v);
}

std::string Tensor::valueStr(int64_t i) const {
  switch (dtype_) {
  case DType::I32:
    return std::to_string(data<int32_t>()[i]);
  case DType::I64:
    return std::to_string(data<int64_t>()[i]);
  default: {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", at(i));
    return buf;
  }
  }
}

std::optional<int64_t> Tensor::firstOutOfRange(DType to) const {
  if (to == dtype_ || to == DType::F64 ||
      (to == DType::I64 && dtype_ == DType::I32))
    return std::nullopt;
  for (int64_t i = 0; i < numel_; ++i) {
    double v = at(i);
    bool fits = true;
    if (dtype_ == DType::I64 && (to == DType::I32))
      fits = data<int64_t>()[i] >= INT32_MIN && data<int64_t>()[i] <= INT32_MAX;
    else if (to == DType::I32 || to == DType::I64)
      fits = std::isfinite(v) && v == std::trunc(v) &&
             v >= (to == DType::I32 ? double(INT32_MIN) : -0x1p63) &&
             v < (to == DType::I32 ? double(INT32_MAX) + 1 : 0x1p63);
    else // to F32
      fits = !std::isfinite(v) ||
             std::fabs(v) <= double(std::numeric_limits<float>::max());
    if (!fits)
      return i;
  }
  return std::nullopt;
}

llvm::Error kiln::checkMemory(uint64_t bytes, const llvm::Twine &what) {
  MemoryLimit limit = availableMemory();
  if (bytes <= limit.bytes)
    return llvm::Error::success();
  std::string room =
      limit.source == "this machine's memory"
          ? "this machine's " + byteSize(limit.bytes) + " of memory"
          : "the " + byteSize(limit.bytes) + " left under " + limit.source;
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 what + " needs " + byteSize(bytes) +
                                     ", more than " + room);
}
