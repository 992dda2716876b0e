//===- Diagnostics.h - Located errors with carets ---------------*- C++ -*-===//
//
// Every error in a model file or a textual IR file prints as
// `FILE:LINE:COL: error: MESSAGE`, then the source line and a caret, through
// llvm::SourceMgr. Errors are counted so a run can report several and exit
// non-zero; past a limit they are dropped, with a note saying so, so that
// garbage input cannot flood. The echoed line is made safe for a terminal
// and cut to the part around the caret (Diagnostics.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_SUPPORT_DIAGNOSTICS_H
#define KILN_SUPPORT_DIAGNOSTICS_H

#include "support/Location.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

namespace kiln {

/// `text` with every control character (but tab), DEL, C1 control, bidi
/// control and byte that is not part of valid UTF-8 replaced by '?': safe to
/// show on a terminal. Byte offsets of what stays are kept.
std::string printable(llvm::StringRef text);

class Diagnostics {
public:
  static constexpr unsigned kMaxErrors = 20;

  explicit Diagnostics(llvm::SourceMgr &sm,
                       llvm::raw_ostream &os = llvm::errs())
      : sm(sm), os(os) {}

  void error(llvm::SMLoc loc, const llvm::Twine &msg,
             llvm::ArrayRef<llvm::SMRange> ranges = {});
  void warning(llvm::SMLoc loc, const llvm::Twine &msg);
  void note(llvm::SMLoc loc, const llvm::Twine &msg);

  unsigned errorCount() const { return errors; }
  bool hadError() const { return errors != 0; }
  /// True once the error limit is reached: callers may stop early.
  bool tooMany() const { return errors >= kMaxErrors; }

  /// The Location of a position in the source manager's buffers.
  Location location(llvm::SMLoc loc) const;
  llvm::SourceMgr &sourceMgr() { return sm; }

private:
  /// Formats one message into a buffer and writes it at once.
  void print(llvm::SMLoc loc, llvm::SourceMgr::DiagKind kind,
             const llvm::Twine &msg, llvm::ArrayRef<llvm::SMRange> ranges);

  llvm::SourceMgr &sm;
  llvm::raw_ostream &os;
  unsigned errors = 0;
  bool notedLimit = false;
};

} // namespace kiln

#endif
