//===- Tensor.cpp - Host tensors ------------------------------------------===//
//
// Allocation, conversion and element access for Tensor.
//
//===----------------------------------------------------------------------===//
#include "ir/Tensor.h"
#include "support/Files.h"
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
