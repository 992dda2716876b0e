//===- AST.h - The model language's syntax tree ------------------*- C++
//-*-===//
//
// What the parser produces and the lowering reads: layers and models (both
// functions with formal arguments and a body), and train blocks. Expressions
// keep their source range for diagnostics.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_FRONTEND_AST_H
#define KILN_FRONTEND_AST_H

#include "ir/Types.h"
#include "llvm/Support/SMLoc.h"
#include <memory>
#include <string>
#include <vector>

namespace kiln {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  Name,   ///< name
  Int,    ///< intValue
  Float,  ///< floatValue
  String, ///< name holds the text
  Unary,  ///< op '-', args[0]
  Binary, ///< op one of + - * / @, args[0], args[1]
  Call,   ///< name(args..., kwargs...)
  Index,  ///< args[0][args[1..]], each index an expression or a Slice
  Slice,  ///< begin:end:step in an index; args hold three (nullable) parts
  List,   ///< [args...]
};

struct Expr {
  ExprKind kind;
  llvm::SMRange range;
  llvm::SMLoc opLoc; ///< The operator or callee: where diagnostics point.
  std::string name;
  int64_t intValue = 0;
  double floatValue = 0;
  char op = 0;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<llvm::SMLoc> kwargLocs;
  /// Levels of the tree this expression roots (1 for a leaf); the parser
  /// keeps it at most kMaxExprDepth, which bounds every recursive walk.
  unsigned depth = 1;
};

/// `f32[N, 784]`, `int` or `float`.
struct TypeExpr {
  enum Kind { Tensor, Int, Float } kind = Tensor;
  DType dtype = DType::F32;
  std::vector<ExprPtr> dims;
  llvm::SMRange range;
};

struct Stmt;
using Block = std::vector<Stmt>;

struct Stmt {
  enum Kind { Param, Let, Minimize, Return, For } kind;
  llvm::SMLoc loc;
  std::string name; ///< Param and Let: the name; For: the loop variable.
  llvm::SMLoc nameLoc;
  TypeExpr type; ///< Param
  ExprPtr value; ///< Param: the initialiser; Let, Minimize, Return; For: start
  ExprPtr end;   ///< For
  Block body;    ///< For
};

struct Formal {
  std::string name;
  llvm::SMLoc loc;
  TypeExpr type;
};

struct FuncDecl {
  bool isModel = false;
  std::string name;
  llvm::SMLoc loc;
  std::vector<Formal> formals;
  Block body;
};

struct TrainSetting {
  std::string key;
  llvm::SMLoc loc;
  ExprPtr value;
};

struct TrainDecl {
  std::string model;
  llvm::SMLoc loc, modelLoc;
  std::vector<TrainSetting> settings;
};

struct Module {
  std::vector<FuncDecl> funcs;
  std::vector<TrainDecl> trains;
  const FuncDecl *findFunc(llvm::StringRef name) const {
    for (const FuncDecl &f : funcs)
      if (f.name == name)
        return &f;
    return nullptr;
  }
};

/// Prints the tree (`kiln dump --stage=ast`).
void printAST(const Module &m, llvm::raw_ostream &os);

} // namespace kiln

#endif
