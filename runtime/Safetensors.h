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

#include "ir/Tensor.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"
#include <map>
#include <string>

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace kiln {

using TensorMap = std::map<std::string, Tensor>;
/// The header's "__metadata__": string keys to string values.
using Metadata = std::map<std::string, std::string>;

/// A whole file: its tensors and its metadata.
struct SafetensorsFile {
  TensorMap tensors;
  Metadata metadata;
};

/// Reads every tensor of a file. A malformed file is an error naming it.
llvm::Expected<TensorMap> readSafetensors(llvm::StringRef path);
/// Parses a whole file's bytes; `path` only names it in errors.
llvm::Expected<TensorMap> parseSafetensors(llvm::StringRef bytes,
                                           llvm::StringRef path);
/// Reads tensors and the "__metadata__" strings (a non-string metadata value
/// is an error naming the file).
llvm::Expected<SafetensorsFile> readSafetensorsFile(llvm::StringRef path);
/// The same from a whole file's bytes; `path` only names it in errors.
llvm::Expected<SafetensorsFile> parseSafetensorsFile(llvm::StringRef bytes,
                                                     llvm::StringRef path);
/// Writes tensors (sorted by name) to a file, atomically and durably.
llvm::Error writeSafetensors(llvm::StringRef path, const TensorMap &tensors);
/// Writes tensors and, when not empty, `metadata` as "__metadata__".
llvm::Error writeSafetensors(llvm::StringRef path, const TensorMap &tensors,
                             const Metadata &metadata);

/// The file a write to `path` replaces: path itself, or the file its chain
/// of symbolic links names (which may not exist yet), as an absolute path.
/// A loop of links is an error.
llvm::Expected<std::string> outputTarget(llvm::StringRef path);

/// Replaces `path` with what `write` produces, so that a crash leaves either
/// the old file or the new one: writes a temporary file in the same
/// directory, fsyncs it, renames it over `path` (over a symbolic link's
/// target, so the link stays) and fsyncs the directory. On failure the
/// temporary file is removed and the error names `path`. A path that is a
/// special file (/dev/null, a pipe, which must have a reader) or names an
/// inherited descriptor (/dev/stdout) is written directly, never replaced;
/// a directory is an error. Every write, flush and close is checked.
llvm::Error
writeFileAtomically(llvm::StringRef path,
                    llvm::function_ref<void(llvm::raw_ostream &)> write);

} // namespace kiln

#endif
