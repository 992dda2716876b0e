//===- Diagnostics.cpp - Located errors with carets -----------------------===//
//
// Thin wrapper over SourceMgr::PrintMessage with an error budget.
//
//===----------------------------------------------------------------------===//
#include "support/Diagnostics.h"
#include "llvm/Support/WithColor.h"

using namespace kiln;

void Diagnostics::error(llvm::SMLoc loc, const llvm::Twine &msg,
                        llvm::ArrayRef<llvm::SMRange> ranges) {
  if (tooMany()) {
    if (!notedLimit)
      llvm::WithColor::note(os) << "too many errors; stopping here\n";
    notedLimit = true;
    return;
  }
  ++errors;
  sm.PrintMessage(os, loc, llvm::SourceMgr::DK_Error, msg, ranges);
}

void Diagnostics::warning(llvm::SMLoc loc, const llvm::Twine &msg) {
  sm.PrintMessage(os, loc, llvm::SourceMgr::DK_Warning, msg);
}

void Diagnostics::note(llvm::SMLoc loc, const llvm::Twine &msg) {
  if (!notedLimit)
    sm.PrintMessage(os, loc, llvm::SourceMgr::DK_Note, msg);
}

Location Diagnostics::location(llvm::SMLoc loc) const {
  unsigned id = sm.FindBufferContainingLoc(loc);
  if (!id)
    return {};
  auto [line, col] = sm.getLineAndColumn(loc, id);
  return {internFileName(sm.getMemoryBuffer(id)->getBufferIdentifier()), line,
          col};
}
