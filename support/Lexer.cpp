//===- Lexer.cpp - Tokens of the model language and textual IR ------------===//
//
// Numbers with a '.' or an exponent are floats; integers that overflow int64
// are errors. Keywords are recognised only in model mode, so IR mnemonics
// and attribute names are free to use any identifier.
//
//===----------------------------------------------------------------------===//
#include "support/Lexer.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/ConvertUTF.h"
#include <cerrno>
#include <cstdlib>

using namespace kiln;

llvm::StringRef kiln::tokName(Tok k) {
  switch (k) {
  case Tok::Eof:
    return "end of file";
  case Tok::Error:
    return "invalid token";
  case Tok::Ident:
    return "a name";
  case Tok::Int:
    return "an integer";
  case Tok::Float:
    return "a number";
  case Tok::String:
    return "a string";
  case Tok::LParen:
    return "'('";
  case Tok::RParen:
    return "')'";
  case Tok::LBracket:
    return "'['";
  case Tok::RBracket:
    return "']'";
  case Tok::LBrace:
    return "'{'";
  case Tok::RBrace:
    return "'}'";
  case Tok::Comma:
    return "','";
  case Tok::Colon:
    return "':'";
  case Tok::Equal:
    return "'='";
  case Tok::Plus:
    return "'+'";
  case Tok::Minus:
    return "'-'";
  case Tok::Star:
    return "'*'";
  case Tok::Slash:
    return "'/'";
  case Tok::At:
    return "'@'";
  case Tok::Percent:
    return "'%'";
  case Tok::DotDot:
    return "'..'";
  case Tok::KwLayer:
    return "'layer'";
  case Tok::KwModel:
    return "'model'";
  case Tok::KwTrain:
    return "'train'";
  case Tok::KwParam:
    return "'param'";
  case Tok::KwLet:
    return "'let'";
  case Tok::KwMinimize:
    return "'minimize'";
  case Tok::KwReturn:
    return "'return'";
  case Tok::KwFor:
    return "'for'";
  case Tok::KwIn:
    return "'in'";
  }
  return "token";
}

Lexer::Lexer(llvm::StringRef buffer, Diagnostics &diags, Mode mode)
    : cur(buffer.begin()), end(buffer.end()), diags(diags), mode(mode) {}

Token Lexer::make(Tok kind, const char *start) {
  Token t;
  t.kind = kind;
  t.text = llvm::StringRef(start, cur - start);
  return t;
}

void Lexer::skipSpaceAndComments() {
  while (cur < end) {
    char c = *cur;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++cur;
    } else if ((mode == Mode::Model && c == '#') ||
               (mode == Mode::IR && c == '/' && cur + 1 < end &&
                cur[1] == '/')) {
      while (cur < end && *cur != '\n')
        ++cur;
    } else {
      return;
    }
  }
}

static bool isIdentStart(char c) { return llvm::isAlpha(c) || c == '_'; }
static bool isIdentChar(char c, Lexer::Mode mode) {
  // IR names may contain dots (graph @names, attribute paths).
  return llvm::isAlnum(c) || c == '_' || (mode == Lexer::Mode::IR && c == '.');
}

Token Lexer::lexNumber(const char *start) {
  bool isFloat = *start == '.'; // `.5`
  while (cur < end && llvm::isDigit(*cur))
    ++cur;
  // `0..T` is a range, not a float.
  if (cur < end && *cur == '.' && !(cur + 1 < end && cur[1] == '.')) {
    isFloat = true;
    ++cur;
    while (cur < end && llvm::isDigit(*cur))
      ++cur;
  }
  if (cur < end && (*cur == 'e' || *cur == 'E')) {
    const char *save = cur++;
    if (cur < end && (*cur == '+' || *cur == '-'))
      ++cur;
    if (cur < end && llvm::isDigit(*cur)) {
      isFloat = true;
      while (cur < end && llvm::isDigit(*cur))
        ++cur;
    } else {
      cur = save;
    }
  }
  Token t = make(isFloat ? Tok::Float : Tok::Int, start);
  std::string text = t.text.str();
  errno = 0;
  if (isFloat) {
    t.floatValue = std::strtod(text.c_str(), nullptr);
  } else {
    t.intValue = std::strtoll(text.c_str(), nullptr, 10);
    t.floatValue = double(t.intValue);
  }
  if (errno == ERANGE) {
    diags.error(t.loc(), "number '" + t.text + "' is out of range", t.range());
    t.kind = Tok::Error;
  }
  return t;
}

Token Lexer::lexString(const char *start) {
  std::string value;
  while (cur < end && *cur != '"' && *cur != '\n') {
    if (*cur == '\\' && cur + 1 < end) {
      ++cur;
      if (llvm::isHexDigit(*cur) && cur + 1 < end && llvm::isHexDigit(cur[1])) {
        value += char(llvm::hexFromNibbles(cur[0], cur[1]));
        cur += 2;
        continue;
      }
      value += *cur == 'n' ? '\n' : *cur == 't' ? '\t' : *cur;
      ++cur;
      continue;
    }
    value += *cur++;
  }
  if (cur >= end || *cur != '"') {
    Token t = make(Tok::Error, start);
    diags.error(t.loc(), "unterminated string");
    return t;
  }
  ++cur;
  Token t = make(Tok::String, start);
  t.stringValue = std::move(value);
  return t;
}

bool Lexer::peekIs(char c) {
  skipSpaceAndComments();
  return cur < end && *cur == c;
}

Token Lexer::next() {
  skipSpaceAndComments();
  const char *start = cur;
  if (cur >= end)
    return make(Tok::Eof, start);
  char c = *cur++;
  if (isIdentStart(c)) {
    while (cur < end && isIdentChar(*cur, mode))
      ++cur;
    Token t = make(Tok::Ident, start);
    if (mode == Mode::Model)
      t.kind = llvm::StringSwitch<Tok>(t.text)
                   .Case("layer", Tok::KwLayer)
                   .Case("model", Tok::KwModel)
                   .Case("train", Tok::KwTrain)
                   .Case("param", Tok::KwParam)
                   .Case("let", Tok::KwLet)
                   .Case("minimize", Tok::KwMinimize)
                   .Case("return", Tok::KwReturn)
                   .Case("for", Tok::KwFor)
                   .Case("in", Tok::KwIn)
                   .Default(Tok::Ident);
    return t;
  }
  if (llvm::isDigit(c))
    return lexNumber(start);
  if (c == '.' && cur < end && llvm::isDigit(*cur))
    return lexNumber(start);
  switch (c) {
  case '(':
    return make(Tok::LParen, start);
  case ')':
    return make(Tok::RParen, start);
  case '[':
    return make(Tok::LBracket, start);
  case ']':
    return make(Tok::RBracket, start);
  case '{':
    return make(Tok::LBrace, start);
  case '}':
    return make(Tok::RBrace, start);
  case ',':
    return make(Tok::Comma, start);
  case ':':
    return make(Tok::Colon, start);
  case '=':
    return make(Tok::Equal, start);
  case '+':
    return make(Tok::Plus, start);
  case '-':
    return make(Tok::Minus, start);
  case '*':
    return make(Tok::Star, start);
  case '/':
    return make(Tok::Slash, start);
  case '@':
    return make(Tok::At, start);
  case '%':
    return make(Tok::Percent, start);
  case '"':
    return lexString(start);
  case '.':
    if (cur < end && *cur == '.') {
      ++cur;
      return make(Tok::DotDot, start);
    }
    break;
  }
  // A character beyond ASCII is one error, not one per byte.
  if (uint8_t(c) >= 0x80) {
    unsigned len = llvm::getNumBytesForUTF8(uint8_t(c));
    auto *p = reinterpret_cast<const llvm::UTF8 *>(start);
    if (len > 1 && size_t(end - start) >= len &&
        llvm::isLegalUTF8Sequence(p, p + len)) {
      cur = start + len;
      Token t = make(Tok::Error, start);
      diags.error(t.loc(),
                  "unexpected character '" + printable(t.text) +
                      "'; names and operators are ASCII",
                  t.range());
      return t;
    }
  }
  Token t = make(Tok::Error, start);
  std::string shown = llvm::isPrint(c)
                          ? std::string("'") + c + "'"
                          : "byte 0x" + llvm::utohexstr(uint8_t(c));
  diags.error(t.loc(), "unexpected character " + shown, t.range());
  return t;
}
