//===- Safetensors.h - Reading and writing .safetensors files ----*- C++
//-*-===//
//
// The format: a little-endian u64 header length, a JSON header mapping names
// to {dtype, shape, data_offsets} (plus an optional "__metadata__" of strings),
// then raw little-endian data. Kiln reads and writes F32, F64, I32 and I64.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_SAFETENSORS_H
#define KILN_RUNTIME_SAFETENSORS_H

#include "runtime/Tensor.h"
#include "llvm/Support/Error.h"
#include <map>
#include <string>

namespace kiln {

using TensorMap = std::map<std::string, Tensor>;

/// Reads every tensor of a file. A malformed file is an error naming it.
llvm::Expected<TensorMap> readSafetensors(llvm::StringRef path);
/// Parses a whole file's bytes; `path` only names it in errors.
llvm::Expected<TensorMap> parseSafetensors(llvm::StringRef bytes,
                                           llvm::StringRef path);
/// Writes tensors (sorted by name) to a file, atomically.
llvm::Error writeSafetensors(llvm::StringRef path, const TensorMap &tensors);

} // namespace kiln

#endif
