//===- Diagnostics.cpp - Located errors with carets -----------------------===//
//
// SourceMgr finds the line and column; the message is then formatted here
// into one buffer and written at once, since llvm::errs() is unbuffered and
// would otherwise write a long line a character at a time. The echoed line
// is what a terminal can show safely: control characters and bytes that
// are no UTF-8 become '?', so an escape sequence in a comment cannot reach
// the terminal; and a line longer than kMaxEchoColumns shows only the part
// around the caret, between "...". A message is made printable too, and
// cut after kMaxMessageBytes.
//
//===----------------------------------------------------------------------===//
#include "support/Diagnostics.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/WithColor.h"

using namespace kiln;

/// The longest stretch of a source line a diagnostic echoes.
static constexpr unsigned kMaxEchoColumns = 160;
/// The longest message printed (it may quote the source).
static constexpr unsigned kMaxMessageBytes = 1000;

/// U+202A-U+202E and U+2066-U+2069, which reorder what a terminal shows
/// ("Trojan Source").
static bool isBidiControl(llvm::StringRef ch) {
  if (ch.size() != 3 || uint8_t(ch[0]) != 0xe2)
    return false;
  auto b1 = uint8_t(ch[1]), b2 = uint8_t(ch[2]);
  return (b1 == 0x80 && b2 >= 0xaa && b2 <= 0xae) ||
         (b1 == 0x81 && b2 >= 0xa6 && b2 <= 0xa9);
}

std::string kiln::printable(llvm::StringRef line) {
  std::string out;
  out.reserve(line.size());
  for (size_t i = 0; i < line.size();) {
    auto c = uint8_t(line[i]);
    if (c < 0x80) {
      out += (c < 0x20 && c != '\t') || c == 0x7f ? '?' : char(c);
      ++i;
      continue;
    }
    unsigned len = llvm::getNumBytesForUTF8(c);
    auto *p = reinterpret_cast<const llvm::UTF8 *>(line.data() + i);
    bool ok = i + len <= line.size() && llvm::isLegalUTF8Sequence(p, p + len) &&
              !(c == 0xc2 && uint8_t(line[i + 1]) < 0xa0) && // C1 controls
              !isBidiControl(line.substr(i, len));
    if (ok) {
      out.append(line.data() + i, len);
      i += len;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

void Diagnostics::print(llvm::SMLoc loc, llvm::SourceMgr::DiagKind kind,
                        const llvm::Twine &msg,
                        llvm::ArrayRef<llvm::SMRange> ranges) {
  llvm::SMDiagnostic d = sm.GetMessage(loc, kind, msg, ranges);
  std::string text;
  llvm::raw_string_ostream s(text);
  s.enable_colors(os.has_colors());
  // The location as SourceMgr prints it, with the real column.
  if (!d.getFilename().empty()) {
    llvm::WithColor(s, llvm::raw_ostream::SAVEDCOLOR, /*Bold=*/true)
        << (d.getFilename() == "-" ? "<stdin>" : d.getFilename());
    if (d.getLineNo() != -1) {
      s << ':' << d.getLineNo();
      if (d.getColumnNo() != -1)
        s << ':' << (d.getColumnNo() + 1);
    }
    s << ": ";
  }
  // The echoed line: a window around the caret, made printable, with the
  // caret and ranges moved to match.
  llvm::StringRef line = d.getLineContents();
  int col = d.getColumnNo();
  std::vector<std::pair<unsigned, unsigned>> spans(d.getRanges().begin(),
                                                   d.getRanges().end());
  std::string shown;
  if (line.size() > kMaxEchoColumns && col >= 0) {
    size_t from = size_t(col) > kMaxEchoColumns / 2
                      ? size_t(col) - kMaxEchoColumns / 2
                      : 0;
    from = std::min(from, line.size() - kMaxEchoColumns);
    size_t to = from + kMaxEchoColumns;
    std::string head = from ? "..." : "", tail = to < line.size() ? "..." : "";
    shown = head + printable(line.substr(from, to - from)) + tail;
    col = col - int(from) + int(head.size());
    std::vector<std::pair<unsigned, unsigned>> clipped;
    for (auto [b, e] : spans) {
      size_t cb = std::max<size_t>(b, from), ce = std::min<size_t>(e, to);
      if (cb < ce)
        clipped.push_back({unsigned(cb - from + head.size()),
                           unsigned(ce - from + head.size())});
    }
    spans = std::move(clipped);
  } else {
    shown = printable(line);
  }
  // A message quotes names and strings from the source, which may be long
  // or hostile too.
  llvm::StringRef raw = d.getMessage();
  std::string message;
  if (raw.size() > kMaxMessageBytes) {
    size_t cut = kMaxMessageBytes; // at a character's first byte
    while (cut > 0 && (uint8_t(raw[cut]) & 0xc0) == 0x80)
      --cut;
    message = printable(raw.take_front(cut)) + "...";
  } else {
    message = printable(raw);
  }
  // The kind and message through SMDiagnostic (for its colours); the line
  // and caret here, since SMDiagnostic::print leaves out the caret of any
  // line that is not ASCII. Columns count characters, and tabs stop every
  // 8 columns, as in SMDiagnostic.
  llvm::SMDiagnostic header(sm, d.getLoc(), d.getFilename(), -1, -1, kind,
                            message, "", {});
  header.print(nullptr, s, os.has_colors(), /*ShowKindLabel=*/true,
               /*ShowLocation=*/false);
  // An empty line (an empty file's) has nothing to point at.
  if (d.getLineNo() != -1 && col >= 0 && !line.empty()) {
    // A caret inside a character points at its first byte.
    while (col > 0 && size_t(col) < shown.size() &&
           (uint8_t(shown[col]) & 0xc0) == 0x80)
      --col;
    std::string text, marks;
    auto mark = [&](size_t byte) {
      if (size_t(col) == byte)
        return '^';
      for (auto [b, e] : spans)
        if (byte >= b && byte < e)
          return '~';
      return ' ';
    };
    for (size_t i = 0; i <= shown.size(); ++i) {
      if (i < shown.size() && (uint8_t(shown[i]) & 0xc0) == 0x80) {
        text += shown[i]; // a continuation byte: no column of its own
        continue;
      }
      char m = mark(i);
      if (i < shown.size() && shown[i] == '\t') {
        do {
          text += ' ';
          marks += m;
        } while (marks.size() % 8);
      } else {
        if (i < shown.size())
          text += shown[i];
        marks += m;
      }
    }
    s << text << '\n';
    llvm::WithColor(s, llvm::raw_ostream::GREEN, /*Bold=*/true)
        << llvm::StringRef(marks).rtrim() << '\n';
  }
  s.flush();
  os << text;
}

void Diagnostics::error(llvm::SMLoc loc, const llvm::Twine &msg,
                        llvm::ArrayRef<llvm::SMRange> ranges) {
  if (tooMany()) {
    if (!notedLimit)
      llvm::WithColor::note(os)
          << "too many errors (" << kMaxErrors
          << "); stopping here, so further errors are not shown\n";
    notedLimit = true;
    return;
  }
  ++errors;
  print(loc, llvm::SourceMgr::DK_Error, msg, ranges);
}

void Diagnostics::warning(llvm::SMLoc loc, const llvm::Twine &msg) {
  print(loc, llvm::SourceMgr::DK_Warning, msg, {});
}

void Diagnostics::note(llvm::SMLoc loc, const llvm::Twine &msg) {
  if (!notedLimit)
    print(loc, llvm::SourceMgr::DK_Note, msg, {});
}

Location Diagnostics::location(llvm::SMLoc loc) const {
  unsigned id = sm.FindBufferContainingLoc(loc);
  if (!id)
    return {};
  auto [line, col] = sm.getLineAndColumn(loc, id);
  return {internFileName(sm.getMemoryBuffer(id)->getBufferIdentifier()), line,
          col};
}
