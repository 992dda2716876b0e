//===- Parser.h - The model language's parser --------------------*- C++
//-*-===//
//
// Recursive descent over the grammar in docs/language.md. Statements start
// with keywords, so newlines carry no meaning. On an error the parser reports
// it and resynchronises at the next statement, so several errors show in one
// run. Nesting is bounded, so hostile input cannot exhaust the stack.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_FRONTEND_PARSER_H
#define KILN_FRONTEND_PARSER_H

#include "frontend/AST.h"
#include "support/Diagnostics.h"

namespace kiln {

/// The deepest expression or block nesting accepted.
constexpr unsigned kMaxNesting = 256;
/// How deep one expression's tree may be: a chain `x + x + ... + x` of
/// this many terms nests as deep as this many parentheses would.
constexpr unsigned kMaxExprDepth = 1000;

/// Parses buffer `bufferId`; errors go to `diags`.
Module parseModule(unsigned bufferId, Diagnostics &diags);

} // namespace kiln

#endif
