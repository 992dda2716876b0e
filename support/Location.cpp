//===- Location.cpp - Source positions ------------------------------------===//
//
// The file-name pool, guarded by a mutex so any thread may intern a name.
//
//===----------------------------------------------------------------------===//
#include "support/Location.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Twine.h"
#include <mutex>

using namespace kiln;

std::string Location::str() const {
  return (file + ":" + llvm::Twine(line) + ":" + llvm::Twine(col)).str();
}

llvm::StringRef kiln::internFileName(llvm::StringRef name) {
  static std::mutex mu;
  static llvm::StringSet<> pool;
  std::lock_guard<std::mutex> lock(mu);
  return pool.insert(name).first->getKey();
}
