//===- TestUtil.h - Helpers shared by the unit tests -------------*- C++
//-*-===//
//
// Parse textual IR or model source from a string, capturing diagnostics.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TESTS_TESTUTIL_H
#define KILN_TESTS_TESTUTIL_H

#include "frontend/Lower.h"
#include "frontend/Parser.h"
#include "ir/IRParser.h"
#include "support/Diagnostics.h"
#include "llvm/Support/MemoryBuffer.h"

namespace kiln::test {

/// Source text with its own SourceMgr and captured diagnostics.
struct Source {
  llvm::SourceMgr sm;
  std::string errors;
  llvm::raw_string_ostream errStream{errors};
  Diagnostics diags{sm, errStream};
  unsigned id;
  explicit Source(llvm::StringRef text, llvm::StringRef name = "test") {
    id = sm.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(text, name),
                               llvm::SMLoc());
  }
};

/// Parses one graph; fails the test (and returns null) on errors.
inline std::unique_ptr<Graph> parseGraph(Source &src) {
  auto graphs = parseIR(src.id, src.diags);
  if (graphs.size() != 1)
    return nullptr;
  return std::move(graphs[0]);
}

/// Lowers the only (or the named) model of a source with given dims.
inline std::unique_ptr<Graph> lowerSource(Source &src,
                                          llvm::StringMap<int64_t> dims = {},
                                          bool train = true) {
  Module m = parseModule(src.id, src.diags);
  checkModule(m, src.diags);
  if (src.diags.hadError())
    return nullptr;
  for (const FuncDecl &f : m.funcs)
    if (f.isModel) {
      LowerOptions opts;
      opts.dims = std::move(dims);
      opts.trainMode = train;
      return lowerModel(m, f, opts, src.diags);
    }
  return nullptr;
}

} // namespace kiln::test

#endif
