//===- LowerExpr.cpp - Lowering expressions -------------------------------===//
//
// Names, operators, indexing and calls (of layers, and of the built-ins in
// Builtins.cpp), each evaluated to a compile-time value or a graph node.
//
//===----------------------------------------------------------------------===//
#include "frontend/Elaborator.h"
#include "ir/Initializers.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/thread.h"
#include <cmath>

using namespace kiln;

//===-- Expressions ------------------------------------------------------===//

void Elaborator::unknownName(const Expr &e, bool isCall) {
  llvm::SMRange range(e.opLoc, llvm::SMLoc::getFromPointer(
                                   e.opLoc.getPointer() + e.name.size()));
  // The name exists, as the other kind of thing.
  std::vector<llvm::StringRef> builtins = builtinNames();
  bool isFunction =
      llvm::any_of(module.funcs,
                   [&](const FuncDecl &f) { return f.name == e.name; }) ||
      llvm::is_contained(builtins, e.name);
  if (!isCall && isFunction) {
    diags.error(e.opLoc,
                "'" + e.name + "' is a function, not a value; call it: " +
                    e.name + "(...)",
                range);
    return;
  }
  if (isCall && frames.back().vars.count(e.name)) {
    diags.error(e.opLoc,
                "'" + e.name +
                    "' is a value, not a function; only layers, models and "
                    "built-in functions can be called",
                range);
    return;
  }
  std::vector<llvm::StringRef> candidates;
  if (!isCall)
    for (auto &kv : frames.back().vars)
      candidates.push_back(kv.getKey());
  for (const FuncDecl &f : module.funcs)
    candidates.push_back(f.name);
  candidates.insert(candidates.end(), builtins.begin(), builtins.end());
  std::string hint = nearest(e.name, candidates);
  diags.error(e.opLoc,
              llvm::Twine(isCall ? "unknown function '" : "unknown name '") +
                  e.name + "'" +
                  (hint.empty() || hint == e.name
                       ? ""
                       : "; did you mean '" + hint + "'?"),
              range);
}

Val Elaborator::evalName(const Expr &e) {
  auto &vars = frames.back().vars;
  if (auto it = vars.find(e.name); it != vars.end())
    return it->second;
  if (e.name == "true" || e.name == "false")
    return Val::boolean(e.name == "true");
  unknownName(e, false);
  return Val::error();
}

Val Elaborator::eval(const Expr &e, llvm::StringRef instance) {
  // Expression depth and call depth are bounded each; their product is
  // bounded here, where every nested expression and call passes.
  if (evalDepth >= kMaxEvalDepth) {
    if (!reportedTooDeep)
      diags.error(e.range.Start, "expressions and layer calls nest more than " +
                                     llvm::Twine(kMaxEvalDepth) +
                                     " levels deep in all");
    reportedTooDeep = true;
    return Val::error();
  }
  ++evalDepth;
  auto leave = llvm::make_scope_exit([&] { --evalDepth; });
  Val v;
  switch (e.kind) {
  case ExprKind::Name:
    v = evalName(e);
    break;
  case ExprKind::Int:
    v = Val::integer(e.intValue);
    break;
  case ExprKind::Float:
    v = Val::number(e.floatValue);
    break;
  case ExprKind::String:
    v.kind = Val::String;
    v.s = e.name;
    break;
  case ExprKind::Unary: {
    Val a = eval(*e.args[0]);
    if (a.kind == Val::Int && a.i == INT64_MIN) {
      diags.error(e.opLoc, "integer overflow in negation");
      v = Val::error();
    } else if (a.kind == Val::Int) {
      v = Val::integer(-a.i);
    } else if (a.kind == Val::Float) {
      v = Val::number(-a.f);
    } else if (a.kind == Val::Tensor && isFloat(a.node->type.dtype)) {
      v = Val::tensor(emit(Op::Neg, {a.node}, {}, e.opLoc));
    } else if (!a.isError()) {
      diags.error(e.opLoc, "cannot negate " + a.describe());
    }
    break;
  }
  case ExprKind::Binary:
    v = evalBinary(e);
    break;
  case ExprKind::Call:
    v = evalCall(e, instance);
    break;
  case ExprKind::Index:
    v = evalIndex(e);
    break;
  case ExprKind::Slice:
    diags.error(e.range.Start, "a slice may appear only inside [...]");
    break;
  case ExprKind::List:
    v.kind = Val::List;
    for (const ExprPtr &item : e.args) {
      v.list.push_back(eval(*item));
      if (v.list.back().isError())
        return Val::error();
    }
    break;
  }
  v.range = e.range;
  return v;
}

Val Elaborator::evalBinary(const Expr &e) {
  Val a = eval(*e.args[0]), b = eval(*e.args[1]);
  if (a.isError() || b.isError())
    return Val::error();
  switch (e.op) {
  case '+':
    return arith(Op::Add, a, b, e.opLoc);
  case '-':
    return arith(Op::Sub, a, b, e.opLoc);
  case '*':
    return arith(Op::Mul, a, b, e.opLoc);
  case '/':
    return arith(Op::Div, a, b, e.opLoc);
  default:
    break;
  }
  // '@': matrix product of two tensors.
  if (a.kind != Val::Tensor || b.kind != Val::Tensor) {
    diags.error(e.opLoc, "'@' needs two tensors, got " + a.describe() +
                             " and " + b.describe());
    return Val::error();
  }
  return Val::tensor(emit(Op::MatMul, {a.node, b.node}, {}, e.opLoc));
}

Val Elaborator::evalIndex(const Expr &e) {
  Val base = eval(*e.args[0]);
  if (base.isError())
    return base;
  if (base.kind != Val::Tensor) {
    diags.error(e.opLoc, "only tensors can be indexed, not " + base.describe());
    return Val::error();
  }
  const TensorType &t = base.node->type;
  size_t items = e.args.size() - 1;
  if (int64_t(items) > t.rank()) {
    diags.error(e.opLoc,
                "too many indices (" + llvm::Twine(items) + ") for " + t.str());
    return Val::error();
  }
  llvm::SmallVector<int64_t, 4> begin, end, step;
  Shape kept; // the result shape, without integer-indexed axes
  bool identity = true;
  for (int64_t axis = 0; axis < t.rank(); ++axis) {
    int64_t dim = t.shape[axis];
    const Expr *item = size_t(axis) < items ? e.args[axis + 1].get() : nullptr;
    if (item && item->kind != ExprKind::Slice) {
      // An integer index drops its axis.
      Val iv = eval(*item);
      if (iv.isError())
        return iv;
      if (iv.kind != Val::Int) {
        diags.error(item->range.Start,
                    "an index must be an integer, got " + iv.describe(),
                    item->range);
        return Val::error();
      }
      int64_t i = iv.i < 0 ? iv.i + dim : iv.i;
      if (i < 0 || i >= dim) {
        diags.error(item->range.Start,
                    "index " + llvm::Twine(iv.i) +
                        " is out of range for axis " + llvm::Twine(axis) +
                        " of " + t.str(),
                    item->range);
        return Val::error();
      }
      begin.push_back(i), end.push_back(i + 1), step.push_back(1);
      identity = false;
      continue;
    }
    // A slice keeps its axis; bounds are clamped and negatives count from
    // the end, as in NumPy.
    int64_t parts[3] = {0, dim, 1};
    for (int p = 0; item && p < 3; ++p) {
      if (!item->args[p])
        continue;
      Val pv = eval(*item->args[p]);
      if (pv.isError())
        return pv;
      if (pv.kind != Val::Int) {
        diags.error(item->args[p]->range.Start, "slice bounds must be integers",
                    item->args[p]->range);
        return Val::error();
      }
      parts[p] = pv.i;
    }
    if (parts[2] < 1) {
      diags.error(item->range.Start, "a slice step must be at least 1",
                  item->range);
      return Val::error();
    }
    for (int p = 0; p < 2; ++p) {
      if (parts[p] < 0)
        parts[p] = std::max<int64_t>(0, parts[p] + dim);
      parts[p] = std::min(parts[p], dim);
    }
    if (parts[0] >= parts[1]) {
      diags.error(item->range.Start,
                  "the slice is empty on axis " + llvm::Twine(axis) + " of " +
                      t.str(),
                  item->range);
      return Val::error();
    }
    begin.push_back(parts[0]), end.push_back(parts[1]),
        step.push_back(parts[2]);
    kept.push_back((parts[1] - parts[0] - 1) / parts[2] + 1); // any step
    identity &= parts[0] == 0 && parts[1] == dim && parts[2] == 1;
  }
  if (identity)
    return base;
  Node *n = emit(Op::Slice, {base.node},
                 {{"begin", begin}, {"end", end}, {"step", step}}, e.opLoc);
  if (n && n->type.shape != kept)
    n = emit(Op::Reshape, {n}, {{"shape", llvm::SmallVector<int64_t, 4>(kept)}},
             e.opLoc);
  return Val::tensor(n);
}

Val Elaborator::evalCall(const Expr &e, llvm::StringRef instance) {
  std::vector<Val> args;
  bool failed = false;
  for (const ExprPtr &a : e.args) {
    args.push_back(eval(*a));
    failed |= args.back().isError();
  }
  for (auto &kw : e.kwargs) {
    args.push_back(eval(*kw.second));
    failed |= args.back().isError();
  }
  for (size_t i = 0; i < e.kwargs.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (e.kwargs[i].first == e.kwargs[j].first) {
        diags.error(e.kwargLocs[i],
                    "argument '" + e.kwargs[i].first + "' is given twice");
        failed = true;
      }
  if (const FuncDecl *f = module.findFunc(e.name))
    return failed ? Val::error() : callLayer(*f, e, args, instance);
  bool handled = false;
  Val v = failed ? Val::error() : callBuiltin(*this, e, args, handled);
  if (!handled && !failed)
    unknownName(e, true);
  return v;
}

bool Elaborator::bindFormals(const FuncDecl &f, const Expr &call,
                             std::vector<Val> &args, Frame &callee) {
  size_t npos = call.args.size();
  std::vector<const Val *> bound(f.formals.size(), nullptr);
  std::vector<llvm::SMRange> where(f.formals.size());
  if (npos > f.formals.size()) {
    diags.error(call.opLoc,
                "'" + f.name + "' takes " + llvm::Twine(f.formals.size()) +
                    " arguments, but " + llvm::Twine(npos) + " were given");
    return false;
  }
  for (size_t i = 0; i < npos; ++i)
    bound[i] = &args[i], where[i] = call.args[i]->range;
  for (size_t k = 0; k < call.kwargs.size(); ++k) {
    const std::string &key = call.kwargs[k].first;
    auto it = llvm::find_if(f.formals,
                            [&](const Formal &a) { return a.name == key; });
    if (it == f.formals.end()) {
      diags.error(call.kwargLocs[k],
                  "'" + f.name + "' has no argument '" + key + "'");
      return false;
    }
    size_t i = it - f.formals.begin();
    if (bound[i]) {
      diags.error(call.kwargLocs[k], "argument '" + key + "' is given twice");
      return false;
    }
    bound[i] = &args[npos + k];
    where[i] = call.kwargs[k].second->range;
  }
  for (size_t i = 0; i < f.formals.size(); ++i)
    if (!bound[i]) {
      diags.error(call.opLoc, "missing argument '" + f.formals[i].name +
                                  "' of '" + f.name + "'");
      return false;
    }
  // Scalars first, then plain dimension names, then check every dimension.
  for (size_t i = 0; i < f.formals.size(); ++i) {
    const Formal &a = f.formals[i];
    const Val &v = *bound[i];
    if (a.type.kind == TypeExpr::Int && v.kind != Val::Int) {
      diags.error(where[i].Start,
                  "argument '" + a.name + "' of '" + f.name +
                      "' must be an integer, got " + v.describe(),
                  where[i]);
      return false;
    }
    if (a.type.kind == TypeExpr::Float && !v.isNumber()) {
      diags.error(where[i].Start,
                  "argument '" + a.name + "' of '" + f.name +
                      "' must be a number, got " + v.describe(),
                  where[i]);
      return false;
    }
    if (a.type.kind == TypeExpr::Tensor &&
        (v.kind != Val::Tensor || v.node->type.dtype != a.type.dtype ||
         v.node->type.rank() != int64_t(a.type.dims.size()))) {
      diags.error(where[i].Start,
                  "argument '" + a.name + "' of '" + f.name + "' must be " +
                      dtypeName(a.type.dtype) + " of rank " +
                      llvm::Twine(a.type.dims.size()) + ", got " + v.describe(),
                  where[i]);
      return false;
    }
    callee.vars[a.name] = a.type.kind == TypeExpr::Float && v.kind == Val::Int
                              ? Val::number(double(v.i))
                              : v;
  }
  for (size_t i = 0; i < f.formals.size(); ++i) {
    const Formal &a = f.formals[i];
    if (a.type.kind != TypeExpr::Tensor)
      continue;
    for (size_t d = 0; d < a.type.dims.size(); ++d) {
      const Expr &dim = *a.type.dims[d];
      if (dim.kind == ExprKind::Name && !callee.vars.count(dim.name))
        callee.vars[dim.name] = Val::integer(bound[i]->node->type.shape[d]);
    }
  }
  frames.push_back(std::move(callee));
  bool ok = true;
  for (size_t i = 0; i < f.formals.size() && ok; ++i) {
    const Formal &a = f.formals[i];
    if (a.type.kind != TypeExpr::Tensor)
      continue;
    auto want = evalType(a.type);
    if (!want) {
      ok = false;
    } else if (want->shape != bound[i]->node->type.shape) {
      diags.error(where[i].Start,
                  "shape mismatch: argument '" + a.name + "' of '" + f.name +
                      "' is " + bound[i]->describe() + ", but '" + f.name +
                      "' expects " + want->str(),
                  where[i]);
      diags.note(a.loc, "'" + a.name + "' is declared here");
      ok = false;
    }
  }
  callee = std::move(frames.back());
  frames.pop_back();
  return ok;
}

Val Elaborator::callLayer(const FuncDecl &f, const Expr &call,
                          std::vector<Val> &args, llvm::StringRef instance) {
  if (llvm::is_contained(callStack, &f)) {
    std::string chain;
    for (auto it = llvm::find(callStack, &f); it != callStack.end(); ++it)
      chain += "'" + (*it)->name + "' -> ";
    diags.error(call.opLoc, "'" + f.name + "' calls itself (" + chain + "'" +
                                f.name + "'); layers cannot recurse");
    return Val::error();
  }
  // Each call elaborates its body on the stack: the depth is bounded.
  if (callStack.size() > kMaxCallDepth) {
    diags.error(call.opLoc,
                "layer calls nest more than " + llvm::Twine(kMaxCallDepth) +
                    " deep ('" + callStack[0]->name + "' -> '" +
                    callStack[1]->name + "' -> ... -> '" + f.name + "')");
    return Val::error();
  }
  Frame callee;
  callee.func = &f;
  Frame &caller = frames.back();
  std::string name = instance.str();
  if (name.empty())
    name = f.name + "_" + std::to_string(caller.autoNames[f.name]++);
  callee.prefix = caller.prefix.empty() ? name : caller.prefix + "." + name;
  if (!bindFormals(f, call, args, callee))
    return Val::error();
  frames.push_back(std::move(callee));
  callStack.push_back(&f);
  unsigned before = diags.errorCount();
  execBlock(f.body);
  Frame done = std::move(frames.back());
  frames.pop_back();
  callStack.pop_back();
  if (diags.errorCount() != before)
    return Val::error();
  if (!done.returned) {
    diags.error(call.opLoc, "layer '" + f.name + "' returns no value");
    return Val::error();
  }
  return done.result;
}

std::unique_ptr<Graph> kiln::lowerModel(const Module &m, const FuncDecl &model,
                                        const LowerOptions &opts,
                                        Diagnostics &diags) {
  auto g = std::make_unique<Graph>();
  Elaborator el(m, diags, *g, opts.trainMode);
  el.maxNodes = opts.maxNodes;
  el.maxUnrolled = opts.maxUnrolled;
  // Elaboration recurses as deep as the limits allow, which a default
  // 8 MiB stack (less under ASan's redzones) does not always hold: it runs
  // on a thread with a stack of its own.
  bool ok = false;
  llvm::thread worker(std::optional<unsigned>(kElaborationStack),
                      [&] { ok = el.lowerModel(model, opts.dims); });
  worker.join();
  if (!ok)
    return nullptr;
  return g;
}
