//===- Elaborator.h - Lowering's internal state ------------------*- C++
//-*-===//
//
// Shared by Lower.cpp (statements, layers), LowerExpr.cpp (expressions)
// and Builtins.cpp (the built-in functions). Not part of the frontend's
// interface.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_FRONTEND_ELABORATOR_H
#define KILN_FRONTEND_ELABORATOR_H

#include "frontend/Lower.h"
#include <deque>

namespace kiln {

/// A compile-time value: a tensor (graph node) or a constant.
struct Val {
  enum Kind {
    Error,
    None,
    Tensor,
    Int,
    Float,
    Bool,
    String,
    List
  } kind = Error;
  Node *node = nullptr;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<Val> list;
  llvm::SMRange range;

  static Val error() { return {}; }
  static Val none() {
    Val v;
    v.kind = None;
    return v;
  }
  static Val tensor(Node *n) {
    Val v;
    v.kind = n ? Tensor : Error;
    v.node = n;
    return v;
  }
  static Val integer(int64_t x) {
    Val v;
    v.kind = Int;
    v.i = x;
    return v;
  }
  static Val number(double x) {
    Val v;
    v.kind = Float;
    v.f = x;
    return v;
  }
  static Val boolean(bool x) {
    Val v;
    v.kind = Bool;
    v.i = x;
    return v;
  }
  bool isError() const { return kind == Error; }
  bool isNumber() const { return kind == Int || kind == Float; }
  double asDouble() const { return kind == Int ? double(i) : f; }
  /// "f32[4,784]", "an integer", ...: for messages.
  std::string describe() const;
};

class Elaborator {
public:
  Elaborator(const Module &m, Diagnostics &diags, Graph &g, bool trainMode)
      : diags(diags), graph(g), trainMode(trainMode), module(m) {}

  bool lowerModel(const FuncDecl &model, const llvm::StringMap<int64_t> &dims);

  // Used by the built-ins.
  Diagnostics &diags;
  Graph &graph;
  bool trainMode;
  unsigned dropoutCount = 0;

  /// Appends a node; on failure reports `msg` at `loc` and returns null.
  Node *emit(Op op, llvm::ArrayRef<Node *> operands, llvm::ArrayRef<Attr> attrs,
             llvm::SMLoc loc);
  /// A float scalar constant broadcast to `shape`.
  Node *constant(double v, llvm::ArrayRef<int64_t> shape, llvm::SMLoc loc);
  /// Broadcasts a node to `shape` if it differs.
  Node *broadcastTo(Node *n, llvm::ArrayRef<int64_t> shape, llvm::SMLoc loc);
  /// Elementwise binary op with NumPy broadcasting; numbers become constants.
  Val arith(Op op, const Val &a, const Val &b, llvm::SMLoc loc);
  /// The full name of a parameter or state declared in the current frame.
  std::string qualify(llvm::StringRef name) const;
  /// Declares (or, when the name exists, shares) a param or state leaf.
  Node *declareLeaf(Op kind, llvm::StringRef fullName, const TensorType &type,
                    llvm::ArrayRef<Attr> init, llvm::SMLoc loc);

private:
  struct Frame {
    std::string prefix;
    const FuncDecl *func = nullptr;
    llvm::StringMap<Val> vars;
    llvm::StringMap<unsigned> autoNames;
    Val result;
    bool returned = false;
  };

  void execBlock(const Block &b);
  void execStmt(const Stmt &s);
  Val eval(const Expr &e, llvm::StringRef instance = "");
  Val evalName(const Expr &e);
  Val evalBinary(const Expr &e);
  Val evalIndex(const Expr &e);
  Val evalCall(const Expr &e, llvm::StringRef instance);
  Val callLayer(const FuncDecl &f, const Expr &call, std::vector<Val> &args,
                llvm::StringRef instance);
  bool bindFormals(const FuncDecl &f, const Expr &call, std::vector<Val> &args,
                   Frame &callee);
  std::optional<TensorType> evalType(const TypeExpr &t);
  std::optional<int64_t> evalDim(const Expr &e);
  Val intArith(char op, int64_t a, int64_t b, llvm::SMLoc loc);
  void unknownName(const Expr &e, bool isCall);

  const Module &module;
  std::deque<Frame> frames; ///< A deque: references survive calls.
  std::vector<const FuncDecl *> callStack;
  /// The graph's leaves by name (declareLeaf looks each one up).
  LeafIndex leafIndex;
  /// Loop iterations run so far in this model, over all loops.
  int64_t unrolled = 0;
  bool reportedTooLarge = false;
  /// eval calls on the stack now.
  unsigned evalDepth = 0;
  bool reportedTooDeep = false;

public:
  /// LowerOptions' limits.
  size_t maxNodes = kMaxNodes;
  int64_t maxUnrolled = kMaxUnrolled;
};

/// The closest of `candidates` to `name`, if close enough to suggest.
std::string nearest(llvm::StringRef name,
                    llvm::ArrayRef<llvm::StringRef> candidates);

/// Evaluates a call to a built-in; `handled` is false if `name` is none.
Val callBuiltin(Elaborator &el, const Expr &call, std::vector<Val> &args,
                bool &handled);

} // namespace kiln

#endif
