//===- Parser.cpp - The model language's parser ---------------------------===//
//
// Grammar (docs/language.md has the full version):
//   file    := (layer | model | train)*
//   func    := ('layer' | 'model') NAME '(' formals ')' '{' stmt* '}'
//   stmt    := 'param' NAME ':' type '=' expr | 'let' NAME '=' expr
//            | 'minimize' expr | 'return' expr
//            | 'for' NAME 'in' expr '..' expr '{' stmt* '}'
//   train   := 'train' NAME '{' (NAME '=' expr)* '}'
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/' | '@') unary)*
//   unary   := '-' unary | postfix
//   postfix := primary ('(' args ')' | '[' indices ']')*
//
//===----------------------------------------------------------------------===//
#include "frontend/Parser.h"
#include "ir/Printer.h"
#include "support/Lexer.h"

using namespace kiln;

namespace {

class Parser {
public:
  Parser(unsigned bufferId, Diagnostics &diags)
      : diags(diags),
        lexer(diags.sourceMgr().getMemoryBuffer(bufferId)->getBuffer(), diags,
              Lexer::Mode::Model) {
    tok = lexer.next();
  }

  Module parseFile();

private:
  void advance() {
    prevEnd = tok.range().End;
    tok = lexer.next();
  }
  bool consume(Tok k) {
    if (!tok.is(k))
      return false;
    advance();
    return true;
  }
  bool expect(Tok k, llvm::StringRef context) {
    if (consume(k))
      return true;
    if (!tok.is(Tok::Error)) // the lexer has reported it
      diags.error(tok.loc(),
                  "expected " + tokName(k) + " " + context + ", found " +
                      describe(tok),
                  tok.range());
    return false;
  }
  static std::string describe(const Token &t) {
    return t.is(Tok::Eof) ? "end of file" : "'" + t.text.str() + "'";
  }
  bool expectName(std::string &out, llvm::SMLoc &loc, llvm::StringRef what) {
    if (!tok.is(Tok::Ident)) {
      if (!tok.is(Tok::Error))
        diags.error(tok.loc(), "expected " + what + ", found " + describe(tok),
                    tok.range());
      return false;
    }
    out = tok.text.str();
    loc = tok.loc();
    advance();
    return true;
  }
  /// Counts nesting; false (after reporting once) when too deep.
  bool enter(llvm::SMLoc at) {
    if (++depth <= kMaxNesting)
      return true;
    if (!reportedDepth)
      diags.error(at, "nesting is deeper than " + llvm::Twine(kMaxNesting) +
                          " levels");
    reportedDepth = true;
    return false;
  }

  bool parseFunc(FuncDecl &f);
  bool parseTrain(TrainDecl &t);
  bool parseType(TypeExpr &t);
  bool parseBlock(Block &body);
  bool parseStmt(Block &body);
  void skipToStatement();
  void skipToTopLevel();

  ExprPtr parseExpr();
  ExprPtr parseTerm();
  ExprPtr parseBinary(bool additive);
  ExprPtr parseUnary();
  ExprPtr parsePostfix();
  ExprPtr parsePrimary();
  bool parseCallArgs(Expr &call);
  ExprPtr parseIndexItem();

  ExprPtr make(ExprKind kind, llvm::SMLoc start) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->range.Start = start;
    e->opLoc = start;
    return e;
  }
  /// Closes e's source range; null (after reporting once) if e makes the
  /// tree deeper than kMaxExprDepth.
  ExprPtr finish(ExprPtr e) {
    e->range.End = prevEnd;
    for (const ExprPtr &a : e->args)
      if (a)
        e->depth = std::max(e->depth, a->depth + 1);
    for (auto &kv : e->kwargs)
      if (kv.second)
        e->depth = std::max(e->depth, kv.second->depth + 1);
    if (e->depth <= kMaxExprDepth)
      return e;
    if (!reportedDepth)
      diags.error(e->opLoc,
                  "this expression is more than " + llvm::Twine(kMaxExprDepth) +
                      " operations deep; split it with 'let'",
                  e->range);
    reportedDepth = true;
    return nullptr;
  }

  Diagnostics &diags;
  Lexer lexer;
  Token tok;
  llvm::SMLoc prevEnd;
  unsigned depth = 0;
  bool reportedDepth = false;
};

struct DepthGuard {
  unsigned &d;
  ~DepthGuard() { --d; }
};

Module Parser::parseFile() {
  Module m;
  while (!tok.is(Tok::Eof) && !diags.tooMany()) {
    if (tok.is(Tok::KwLayer) || tok.is(Tok::KwModel)) {
      FuncDecl f;
      if (parseFunc(f))
        m.funcs.push_back(std::move(f));
      else
        skipToTopLevel();
    } else if (tok.is(Tok::KwTrain)) {
      TrainDecl t;
      if (parseTrain(t))
        m.trains.push_back(std::move(t));
      else
        skipToTopLevel();
    } else {
      if (!tok.is(Tok::Error))
        diags.error(tok.loc(),
                    "expected 'layer', 'model' or 'train', found " +
                        describe(tok),
                    tok.range());
      advance();
      skipToTopLevel();
    }
  }
  return m;
}

void Parser::skipToTopLevel() {
  while (!tok.is(Tok::Eof) && !tok.is(Tok::KwLayer) && !tok.is(Tok::KwModel) &&
         !tok.is(Tok::KwTrain))
    advance();
}

void Parser::skipToStatement() {
  while (!tok.is(Tok::Eof) && !tok.is(Tok::KwParam) && !tok.is(Tok::KwLet) &&
         !tok.is(Tok::KwMinimize) && !tok.is(Tok::KwReturn) &&
         !tok.is(Tok::KwFor) && !tok.is(Tok::RBrace) && !tok.is(Tok::KwLayer) &&
         !tok.is(Tok::KwModel) && !tok.is(Tok::KwTrain))
    advance();
}

bool Parser::parseFunc(FuncDecl &f) {
  f.isModel = tok.is(Tok::KwModel);
  advance();
  if (!expectName(f.name, f.loc, f.isModel ? "a model name" : "a layer name"))
    return false;
  if (!expect(Tok::LParen, "after the name"))
    return false;
  if (!tok.is(Tok::RParen)) {
    do {
      Formal formal;
      if (!expectName(formal.name, formal.loc, "an argument name"))
        return false;
      if (!expect(Tok::Colon, "after the argument name"))
        return false;
      if (!parseType(formal.type))
        return false;
      f.formals.push_back(std::move(formal));
    } while (consume(Tok::Comma));
  }
  if (!expect(Tok::RParen, "to close the arguments"))
    return false;
  return parseBlock(f.body);
}

bool Parser::parseType(TypeExpr &t) {
  t.range.Start = tok.loc();
  if (!tok.is(Tok::Ident)) {
    diags.error(tok.loc(),
                "expected a type (f32[...], i32[...], int or "
                "float), found " +
                    describe(tok),
                tok.range());
    return false;
  }
  llvm::StringRef name = tok.text;
  if (name == "int" || name == "float") {
    t.kind = name == "int" ? TypeExpr::Int : TypeExpr::Float;
    advance();
    t.range.End = prevEnd;
    return true;
  }
  if (name != "f32" && name != "i32") {
    diags.error(tok.loc(),
                "unknown type '" + name +
                    "'; expected f32[...], i32[...], int or float",
                tok.range());
    return false;
  }
  t.dtype = *parseDType(name);
  advance();
  if (!expect(Tok::LBracket, "after the element type"))
    return false;
  if (!tok.is(Tok::RBracket)) {
    do {
      ExprPtr d = parseExpr();
      if (!d)
        return false;
      t.dims.push_back(std::move(d));
    } while (consume(Tok::Comma));
  }
  if (!expect(Tok::RBracket, "to close the shape"))
    return false;
  t.range.End = prevEnd;
  return true;
}

bool Parser::parseBlock(Block &body) {
  llvm::SMLoc open = tok.loc();
  if (!expect(Tok::LBrace, "to open the body"))
    return false;
  if (!enter(open))
    return false;
  DepthGuard guard{depth};
  while (!tok.is(Tok::RBrace) && !tok.is(Tok::Eof) && !diags.tooMany()) {
    if (tok.is(Tok::KwLayer) || tok.is(Tok::KwModel) || tok.is(Tok::KwTrain))
      break; // a missing '}'; reported below
    if (!parseStmt(body)) {
      if (reportedDepth)
        return false;
      skipToStatement();
    }
  }
  if (!tok.is(Tok::RBrace)) {
    diags.error(tok.loc(), "expected '}' to close the body opened here");
    diags.note(open, "the body opens here");
    return false;
  }
  advance();
  return true;
}

bool Parser::parseStmt(Block &body) {
  Stmt s;
  s.loc = tok.loc();
  switch (tok.kind) {
  case Tok::KwParam:
    s.kind = Stmt::Param;
    advance();
    if (!expectName(s.name, s.nameLoc, "a parameter name") ||
        !expect(Tok::Colon, "after the parameter name") || !parseType(s.type) ||
        !expect(Tok::Equal, "before the initialiser"))
      return false;
    if (!(s.value = parseExpr()))
      return false;
    break;
  case Tok::KwLet:
    s.kind = Stmt::Let;
    advance();
    if (!expectName(s.name, s.nameLoc, "a name") ||
        !expect(Tok::Equal, "after the name"))
      return false;
    if (!(s.value = parseExpr()))
      return false;
    break;
  case Tok::KwMinimize:
  case Tok::KwReturn:
    s.kind = tok.is(Tok::KwMinimize) ? Stmt::Minimize : Stmt::Return;
    advance();
    if (!(s.value = parseExpr()))
      return false;
    break;
  case Tok::KwFor:
    s.kind = Stmt::For;
    advance();
    if (!expectName(s.name, s.nameLoc, "a loop variable") ||
        !expect(Tok::KwIn, "after the loop variable"))
      return false;
    if (!(s.value = parseExpr()) || !expect(Tok::DotDot, "in the range a..b") ||
        !(s.end = parseExpr()))
      return false;
    if (!parseBlock(s.body))
      return false;
    break;
  default:
    if (!tok.is(Tok::Error))
      diags.error(tok.loc(),
                  "expected a statement (param, let, for, minimize "
                  "or return), found " +
                      describe(tok),
                  tok.range());
    advance();
    return false;
  }
  body.push_back(std::move(s));
  return true;
}

bool Parser::parseTrain(TrainDecl &t) {
  t.loc = tok.loc();
  advance();
  if (!expectName(t.model, t.modelLoc, "the name of the model to train") ||
      !expect(Tok::LBrace, "to open the train block"))
    return false;
  while (!tok.is(Tok::RBrace) && !tok.is(Tok::Eof) && !diags.tooMany()) {
    TrainSetting s;
    if (!expectName(s.key, s.loc, "a setting name") ||
        !expect(Tok::Equal, "after the setting name") ||
        !(s.value = parseExpr())) {
      while (!tok.is(Tok::Eof) && !tok.is(Tok::RBrace) && !tok.is(Tok::Ident))
        advance();
      if (tok.is(Tok::Ident))
        continue;
      break;
    }
    t.settings.push_back(std::move(s));
  }
  return expect(Tok::RBrace, "to close the train block");
}

ExprPtr Parser::parseExpr() {
  if (!enter(tok.loc()))
    return nullptr;
  DepthGuard guard{depth};
  return parseBinary(/*additive=*/true);
}

ExprPtr Parser::parseTerm() { return parseBinary(/*additive=*/false); }

/// Left-associative binary operators of one precedence level: additive
/// (+ -, over terms) or multiplicative (* / @, over unary expressions).
ExprPtr Parser::parseBinary(bool additive) {
  llvm::SMLoc start = tok.loc();
  auto operand = [&] { return additive ? parseTerm() : parseUnary(); };
  auto isOp = [&] {
    return additive
               ? tok.is(Tok::Plus) || tok.is(Tok::Minus)
               : tok.is(Tok::Star) || tok.is(Tok::Slash) || tok.is(Tok::At);
  };
  ExprPtr lhs = operand();
  while (lhs && isOp()) {
    auto e = make(ExprKind::Binary, start);
    e->op = tok.text[0];
    e->opLoc = tok.loc();
    advance();
    ExprPtr rhs = operand();
    if (!rhs)
      return nullptr;
    e->args.push_back(std::move(lhs));
    e->args.push_back(std::move(rhs));
    lhs = finish(std::move(e));
  }
  return lhs;
}

ExprPtr Parser::parseUnary() {
  if (!tok.is(Tok::Minus))
    return parsePostfix();
  if (!enter(tok.loc()))
    return nullptr;
  DepthGuard guard{depth};
  auto e = make(ExprKind::Unary, tok.loc());
  e->op = '-';
  advance();
  ExprPtr operand = parseUnary();
  if (!operand)
    return nullptr;
  e->args.push_back(std::move(operand));
  return finish(std::move(e));
}

ExprPtr Parser::parsePostfix() {
  llvm::SMLoc start = tok.loc();
  ExprPtr e = parsePrimary();
  while (e) {
    if (tok.is(Tok::LParen)) {
      if (e->kind != ExprKind::Name) {
        diags.error(tok.loc(), "only layers and built-ins can be called");
        return nullptr;
      }
      e->kind = ExprKind::Call;
      advance();
      if (!parseCallArgs(*e))
        return nullptr;
      e = finish(std::move(e));
    } else if (tok.is(Tok::LBracket)) {
      auto idx = make(ExprKind::Index, start);
      idx->opLoc = tok.loc();
      advance();
      idx->args.push_back(std::move(e));
      do {
        ExprPtr item = parseIndexItem();
        if (!item)
          return nullptr;
        idx->args.push_back(std::move(item));
      } while (consume(Tok::Comma));
      if (!expect(Tok::RBracket, "to close the index"))
        return nullptr;
      e = finish(std::move(idx));
    } else {
      break;
    }
  }
  return e;
}

bool Parser::parseCallArgs(Expr &call) {
  if (consume(Tok::RParen))
    return true;
  do {
    // A keyword argument is NAME '=' expr.
    if (tok.is(Tok::Ident) && lexer.peekIs('=')) {
      std::string name = tok.text.str();
      llvm::SMLoc nameLoc = tok.loc();
      advance();
      advance(); // '='
      ExprPtr v = parseExpr();
      if (!v)
        return false;
      call.kwargs.emplace_back(std::move(name), std::move(v));
      call.kwargLocs.push_back(nameLoc);
      continue;
    }
    if (!call.kwargs.empty()) {
      diags.error(tok.loc(), "a positional argument cannot follow keyword "
                             "arguments");
      return false;
    }
    ExprPtr v = parseExpr();
    if (!v)
      return false;
    call.args.push_back(std::move(v));
  } while (consume(Tok::Comma));
  return expect(Tok::RParen, "to close the call");
}

ExprPtr Parser::parseIndexItem() {
  llvm::SMLoc start = tok.loc();
  ExprPtr first;
  if (!tok.is(Tok::Colon)) {
    first = parseExpr();
    if (!first || !tok.is(Tok::Colon))
      return first;
  }
  // A slice begin:end:step; every part may be left out.
  auto slice = make(ExprKind::Slice, start);
  slice->args.resize(3);
  slice->args[0] = std::move(first);
  for (int part = 1; part < 3 && consume(Tok::Colon); ++part)
    if (!tok.is(Tok::Colon) && !tok.is(Tok::Comma) && !tok.is(Tok::RBracket))
      if (!(slice->args[part] = parseExpr()))
        return nullptr;
  return finish(std::move(slice));
}

ExprPtr Parser::parsePrimary() {
  llvm::SMLoc start = tok.loc();
  switch (tok.kind) {
  case Tok::Ident: {
    auto e = make(ExprKind::Name, start);
    e->name = tok.text.str();
    advance();
    return finish(std::move(e));
  }
  case Tok::Int:
  case Tok::Float: {
    auto e = make(tok.is(Tok::Int) ? ExprKind::Int : ExprKind::Float, start);
    e->intValue = tok.intValue;
    e->floatValue = tok.floatValue;
    advance();
    return finish(std::move(e));
  }
  case Tok::String: {
    auto e = make(ExprKind::String, start);
    e->name = tok.stringValue;
    advance();
    return finish(std::move(e));
  }
  case Tok::LParen: {
    advance();
    ExprPtr e = parseExpr();
    if (!e || !expect(Tok::RParen, "to close the parenthesis"))
      return nullptr;
    return e;
  }
  case Tok::LBracket: {
    auto e = make(ExprKind::List, start);
    advance();
    if (!tok.is(Tok::RBracket)) {
      do {
        ExprPtr item = parseExpr();
        if (!item)
          return nullptr;
        e->args.push_back(std::move(item));
      } while (consume(Tok::Comma));
    }
    if (!expect(Tok::RBracket, "to close the list"))
      return nullptr;
    return finish(std::move(e));
  }
  case Tok::Error:
    advance();
    return nullptr;
  default:
    diags.error(tok.loc(), "expected an expression, found " + describe(tok),
                tok.range());
    return nullptr;
  }
}

// AST printing: one node per line, indented, S-expression flavoured.
void printExpr(const Expr *e, llvm::raw_ostream &os) {
  if (!e) {
    os << "_";
    return;
  }
  switch (e->kind) {
  case ExprKind::Name:
    os << e->name;
    return;
  case ExprKind::Int:
    os << e->intValue;
    return;
  case ExprKind::Float:
    os << formatFloat(e->floatValue);
    return;
  case ExprKind::String:
    os << '"' << e->name << '"';
    return;
  case ExprKind::Unary:
    os << "(neg ";
    printExpr(e->args[0].get(), os);
    os << ")";
    return;
  case ExprKind::Binary:
    os << "(" << e->op << " ";
    printExpr(e->args[0].get(), os);
    os << " ";
    printExpr(e->args[1].get(), os);
    os << ")";
    return;
  case ExprKind::Call:
    os << "(call " << e->name;
    for (auto &a : e->args) {
      os << " ";
      printExpr(a.get(), os);
    }
    for (auto &[k, v] : e->kwargs) {
      os << " " << k << "=";
      printExpr(v.get(), os);
    }
    os << ")";
    return;
  case ExprKind::Index:
  case ExprKind::Slice:
  case ExprKind::List:
    os << (e->kind == ExprKind::Index   ? "(index"
           : e->kind == ExprKind::Slice ? "(slice"
                                        : "(list");
    for (auto &a : e->args) {
      os << " ";
      printExpr(a.get(), os);
    }
    os << ")";
    return;
  }
}

void printTypeExpr(const TypeExpr &t, llvm::raw_ostream &os) {
  if (t.kind != TypeExpr::Tensor) {
    os << (t.kind == TypeExpr::Int ? "int" : "float");
    return;
  }
  os << dtypeName(t.dtype) << "[";
  for (size_t i = 0; i < t.dims.size(); ++i) {
    os << (i ? ", " : "");
    printExpr(t.dims[i].get(), os);
  }
  os << "]";
}

void printBlock(const Block &b, unsigned indent, llvm::raw_ostream &os) {
  for (const Stmt &s : b) {
    os.indent(indent);
    switch (s.kind) {
    case Stmt::Param:
      os << "param " << s.name << ": ";
      printTypeExpr(s.type, os);
      os << " = ";
      break;
    case Stmt::Let:
      os << "let " << s.name << " = ";
      break;
    case Stmt::Minimize:
      os << "minimize ";
      break;
    case Stmt::Return:
      os << "return ";
      break;
    case Stmt::For:
      os << "for " << s.name << " in ";
      printExpr(s.value.get(), os);
      os << " .. ";
      printExpr(s.end.get(), os);
      os << "\n";
      printBlock(s.body, indent + 2, os);
      continue;
    }
    printExpr(s.value.get(), os);
    os << "\n";
  }
}

} // namespace

Module kiln::parseModule(unsigned bufferId, Diagnostics &diags) {
  return Parser(bufferId, diags).parseFile();
}

void kiln::printAST(const Module &m, llvm::raw_ostream &os) {
  for (const FuncDecl &f : m.funcs) {
    os << (f.isModel ? "model " : "layer ") << f.name << "(";
    for (size_t i = 0; i < f.formals.size(); ++i) {
      os << (i ? ", " : "") << f.formals[i].name << ": ";
      printTypeExpr(f.formals[i].type, os);
    }
    os << ")\n";
    printBlock(f.body, 2, os);
  }
  for (const TrainDecl &t : m.trains) {
    os << "train " << t.model << "\n";
    for (const TrainSetting &s : t.settings) {
      os << "  " << s.key << " = ";
      printExpr(s.value.get(), os);
      os << "\n";
    }
  }
}
