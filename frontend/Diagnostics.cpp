//===- Diagnostics.cpp - Located errors with carets -----------------------===//
//
// Thin wrapper over SourceMgr::PrintMessage with an error budget.
//
//===----------------------------------------------------------------------===//
#include "frontend/Diagnostics.h"
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

void Diagnostics::error(const Location &loc, const llvm::Twine &msg) {
  // Find the buffer the location names so the caret can be shown.
  for (unsigned id = 1; id <= sm.getNumBuffers(); ++id) {
    const llvm::MemoryBuffer *buf = sm.getMemoryBuffer(id);
    if (loc.isKnown() && buf->getBufferIdentifier() == loc.file) {
      llvm::SMLoc at = sm.FindLocForLineAndColumn(id, loc.line, loc.col);
      if (at.isValid())
        return error(at, msg);
    }
  }
  if (tooMany())
    return;
  ++errors;
  if (loc.isKnown())
    os << loc.file << ":" << loc.line << ":" << loc.col << ": ";
  llvm::WithColor::error(os) << msg << "\n";
}

Location Diagnostics::location(llvm::SMLoc loc) const {
  unsigned id = sm.FindBufferContainingLoc(loc);
  if (!id)
    return {};
  auto [line, col] = sm.getLineAndColumn(loc, id);
  return {internFileName(sm.getMemoryBuffer(id)->getBufferIdentifier()), line,
          col};
}
