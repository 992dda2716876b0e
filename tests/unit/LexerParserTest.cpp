//===- LexerParserTest.cpp - Tokens and syntax of the model language ------===//
//
// Tokens, the shape of the parsed tree, error recovery, and the nesting
// limit that keeps hostile input from exhausting the stack.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"
#include "support/Lexer.h"
#include <gtest/gtest.h>

using namespace kiln;

namespace {

std::vector<Tok> kinds(llvm::StringRef text,
                       Lexer::Mode mode = Lexer::Mode::Model) {
  test::Source src(text);
  Lexer lex(src.sm.getMemoryBuffer(src.id)->getBuffer(), src.diags, mode);
  std::vector<Tok> out;
  for (Token t = lex.next(); !t.is(Tok::Eof); t = lex.next())
    out.push_back(t.kind);
  return out;
}

TEST(Lexer, NumbersRangesAndKeywords) {
  EXPECT_EQ(kinds("for t in 0..T"),
            (std::vector<Tok>{Tok::KwFor, Tok::Ident, Tok::KwIn, Tok::Int,
                              Tok::DotDot, Tok::Ident}));
  EXPECT_EQ(kinds("1.5 2e-3 .5 7 x@w # comment"),
            (std::vector<Tok>{Tok::Float, Tok::Float, Tok::Float, Tok::Int,
                              Tok::Ident, Tok::At, Tok::Ident}));
  // In IR mode `//` starts a comment and keywords are plain names.
  EXPECT_EQ(kinds("return %0 // x", Lexer::Mode::IR),
            (std::vector<Tok>{Tok::Ident, Tok::Percent, Tok::Int}));
}

TEST(Lexer, BadBytesAreErrorsNotCrashes) {
  test::Source src(llvm::StringRef("model \x01\xff\0 x", 11));
  Lexer lex(src.sm.getMemoryBuffer(src.id)->getBuffer(), src.diags,
            Lexer::Mode::Model);
  while (!lex.next().is(Tok::Eof)) {
  }
  EXPECT_EQ(src.diags.errorCount(), 3u);
  EXPECT_NE(src.errors.find("unexpected character byte 0x1"), std::string::npos)
      << src.errors;
  EXPECT_NE(src.errors.find("byte 0xFF"), std::string::npos) << src.errors;
}

TEST(Parser, BuildsTheTree) {
  test::Source src(
      "layer d(x: f32[N, I], out: int) {\n"
      "  param w: f32[I, out] = normal(std = 0.1)\n"
      "  return x @ w + -1\n}\n"
      "model m(x: f32[N, 4]) {\n  for t in 0..3 { let x = d(x, 4) }\n"
      "  return x[:, 1:3]\n}\n");
  Module m = parseModule(src.id, src.diags);
  ASSERT_FALSE(src.diags.hadError()) << src.errors;
  ASSERT_EQ(m.funcs.size(), 2u);
  std::string s;
  llvm::raw_string_ostream os(s);
  printAST(m, os);
  EXPECT_EQ(s, "layer d(x: f32[N, I], out: int)\n"
               "  param w: f32[I, out] = (call normal std=0.1)\n"
               "  return (+ (@ x w) (neg 1))\n"
               "model m(x: f32[N, 4])\n"
               "  for t in 0 .. 3\n"
               "    let x = (call d x 4)\n"
               "  return (index x (slice _ _ _) (slice 1 3 _))\n");
}

TEST(Parser, RecoversAndReportsEachBadStatement) {
  test::Source src("model m(x: f32[2]) {\n  let = 3\n  let y = (x\n"
                   "  return x +\n}\n");
  parseModule(src.id, src.diags);
  EXPECT_EQ(src.diags.errorCount(), 3u) << src.errors;
}

TEST(Parser, DeepNestingIsRefusedNotACrash) {
  std::string deep = "model m(x: f32[2]) { return " + std::string(100000, '(') +
                     "x" + std::string(100000, ')') + " }";
  test::Source src(deep);
  parseModule(src.id, src.diags);
  EXPECT_NE(src.errors.find("nesting is deeper than 256 levels"),
            std::string::npos)
      << src.errors.substr(0, 300);
  test::Source minus("model m(x: f32[2]) { return " + std::string(100000, '-') +
                     "x }");
  parseModule(minus.id, minus.diags);
  EXPECT_NE(minus.errors.find("nesting is deeper"), std::string::npos);
}

} // namespace
