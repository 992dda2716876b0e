//===- Lexer.h - Tokens of the model language and textual IR ----*- C++ -*-===//
//
// One lexer serves both languages: `.kiln` model files (comments start with
// `#`) and `.kir` textual IR (comments start with `//`). It never reads past
// the buffer, so embedded NUL bytes and binary input are just bad characters.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_SUPPORT_LEXER_H
#define KILN_SUPPORT_LEXER_H

#include "support/Diagnostics.h"

namespace kiln {

enum class Tok {
  Eof,
  Error,
  Ident,
  Int,
  Float,
  String,
  // Punctuation.
  LParen,
  RParen,
  LBracket,
  RBracket,
  LBrace,
  RBrace,
  Comma,
  Colon,
  Equal,
  Plus,
  Minus,
  Star,
  Slash,
  At,
  Percent,
  DotDot,
  // Keywords of the model language.
  KwLayer,
  KwModel,
  KwTrain,
  KwParam,
  KwLet,
  KwMinimize,
  KwReturn,
  KwFor,
  KwIn,
};

struct Token {
  Tok kind = Tok::Eof;
  llvm::StringRef text;
  int64_t intValue = 0;    ///< Tok::Int
  double floatValue = 0;   ///< Tok::Float
  std::string stringValue; ///< Tok::String, unescaped
  llvm::SMLoc loc() const { return llvm::SMLoc::getFromPointer(text.data()); }
  llvm::SMRange range() const {
    return {loc(), llvm::SMLoc::getFromPointer(text.data() + text.size())};
  }
  bool is(Tok k) const { return kind == k; }
};

/// A printable name for a token kind, for "expected X" messages.
llvm::StringRef tokName(Tok k);

class Lexer {
public:
  enum class Mode { Model, IR };
  Lexer(llvm::StringRef buffer, Diagnostics &diags, Mode mode);

  Token next();
  /// True if the next token starts with character c (nothing is consumed).
  bool peekIs(char c);

private:
  Token make(Tok kind, const char *start);
  Token lexNumber(const char *start);
  Token lexString(const char *start);
  void skipSpaceAndComments();

  const char *cur, *end;
  Diagnostics &diags;
  Mode mode;
};

} // namespace kiln

#endif
