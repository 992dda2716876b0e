//===- Location.h - Source positions ----------------------------*- C++ -*-===//
//
// A file, line and column, carried by every IR node and every diagnostic.
// File names are interned in one process-wide pool, so a Location is cheap
// to copy and its `file` outlives the buffer it came from.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_SUPPORT_LOCATION_H
#define KILN_SUPPORT_LOCATION_H

#include "llvm/ADT/StringRef.h"
#include <string>

namespace kiln {

/// A source position. `file` points into a process-wide string pool.
struct Location {
  llvm::StringRef file;
  unsigned line = 0, col = 0;
  bool isKnown() const { return line != 0; }
  /// "file:line:col", as diagnostics print it.
  std::string str() const;
};

/// Interns a file name for Location.
llvm::StringRef internFileName(llvm::StringRef name);

} // namespace kiln

#endif
