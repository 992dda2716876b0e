//===- Lower.cpp - From the syntax tree to graph IR -----------------------===//
//
// Elaboration of one model:
//  1. bind the model's dimension names (-D or the train block's batch) and
//     create an input node per argument;
//  2. run the body: `param` declares (or shares) a named leaf, `let` binds,
//     `for` unrolls, `minimize`/`return` mark the objective and output;
//  3. a layer call unifies its formal shapes with the arguments, names its
//     parameters after the `let` it stands in (or layer_K) and runs its body
//     in a fresh frame.
// Expressions that fail yield an error value, which later expressions pass
// on silently, so each mistake is reported once.
//
//===----------------------------------------------------------------------===//
#include "frontend/Elaborator.h"
#include "ir/Initializers.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include <cmath>

using namespace kiln;

std::string Val::describe() const {
  switch (kind) {
  case Error:
    return "an invalid value";
  case None:
    return "nothing";
  case Tensor:
    return node->type.str();
  case Int:
    return "the integer " + std::to_string(i);
  case Float:
    return "a number";
  case Bool:
    return "a boolean";
  case String:
    return "a string";
  case List:
    return "a list";
  }
  return "";
}

/// The closest of `candidates` to `name`, if close enough to suggest.
static std::string nearest(llvm::StringRef name,
                           llvm::ArrayRef<llvm::StringRef> candidates) {
  std::string best;
  unsigned bestDist = std::max<unsigned>(2, name.size() / 3) + 1;
  for (llvm::StringRef c : candidates) {
    unsigned d = name.edit_distance(c, true, bestDist);
    if (d < bestDist) {
      bestDist = d;
      best = c.str();
    }
  }
  return best;
}

void kiln::checkModule(const Module &m, Diagnostics &diags) {
  llvm::StringSet<> seen;
  auto builtins = builtinNames();
  for (const FuncDecl &f : m.funcs) {
    if (!seen.insert(f.name).second)
      diags.error(f.loc, "'" + f.name + "' is defined twice");
    if (llvm::is_contained(builtins, f.name))
      diags.error(f.loc, (f.isModel ? "model '" : "layer '") + f.name +
                             "' has the name of a built-in function");
    llvm::StringSet<> formals;
    for (const Formal &a : f.formals)
      if (!formals.insert(a.name).second)
        diags.error(a.loc, "argument '" + a.name + "' is declared twice");
  }
}

//===-- Node construction ------------------------------------------------===//

Node *Elaborator::emit(Op op, llvm::ArrayRef<Node *> operands,
                       llvm::ArrayRef<Attr> attrs, llvm::SMLoc loc) {
  if (llvm::is_contained(operands, nullptr))
    return nullptr;
  if (graph.nodes.size() >= kMaxNodes) {
    if (!reportedTooLarge)
      diags.error(loc, "the model unrolls to more than " +
                           llvm::Twine(kMaxNodes) + " ops");
    reportedTooLarge = true;
    return nullptr;
  }
  auto n = graph.add(op, operands, attrs, diags.location(loc));
  if (!n) {
    diags.error(loc, llvm::toString(n.takeError()));
    return nullptr;
  }
  return *n;
}

Node *Elaborator::constant(double v, llvm::ArrayRef<int64_t> shape,
                           llvm::SMLoc loc) {
  if (graph.nodes.size() >= kMaxNodes)
    return emit(Op::Constant, {}, {}, loc); // reports the limit
  auto n = graph.add(Op::Constant, {}, {{"value", v}}, diags.location(loc),
                     TensorType{DType::F32, {}});
  return broadcastTo(llvm::cantFail(std::move(n)), shape, loc);
}

Node *Elaborator::broadcastTo(Node *n, llvm::ArrayRef<int64_t> shape,
                              llvm::SMLoc loc) {
  if (!n || n->type.shape == shape)
    return n;
  return emit(Op::Broadcast, {n},
              {{"shape", llvm::SmallVector<int64_t, 4>(shape)}}, loc);
}

Val Elaborator::intArith(char op, int64_t a, int64_t b, llvm::SMLoc loc) {
  int64_t r = 0;
  bool overflow = false;
  switch (op) {
  case '+':
    overflow = __builtin_add_overflow(a, b, &r);
    break;
  case '-':
    overflow = __builtin_sub_overflow(a, b, &r);
    break;
  case '*':
    overflow = __builtin_mul_overflow(a, b, &r);
    break;
  case '/':
    if (b == 0) {
      diags.error(loc, "integer division by zero");
      return Val::error();
    }
    overflow = a == INT64_MIN && b == -1;
    // Floor division, as Python's //.
    r = a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
    break;
  }
  if (overflow) {
    diags.error(loc, "integer overflow: " + llvm::Twine(a) + " " +
                         llvm::Twine(op) + " " + llvm::Twine(b) +
                         " does not fit in 64 bits");
    return Val::error();
  }
  return Val::integer(r);
}

Val Elaborator::arith(Op op, const Val &a, const Val &b, llvm::SMLoc loc) {
  if (a.isError() || b.isError())
    return Val::error();
  llvm::StringRef name = opInfo(op).mnemonic;
  for (const Val *v : {&a, &b})
    if (!v->isNumber() && v->kind != Val::Tensor) {
      diags.error(loc, "'" + name + "' needs tensors or numbers, got " +
                           v->describe());
      return Val::error();
    }
  if (a.isNumber() && b.isNumber()) {
    static const llvm::StringRef ops = "+-*/";
    const Op intOps[] = {Op::Add, Op::Sub, Op::Mul, Op::Div};
    for (int k = 0; k < 4; ++k)
      if (op == intOps[k] && a.kind == Val::Int && b.kind == Val::Int)
        return intArith(ops[k], a.i, b.i, loc);
    double x = a.asDouble(), y = b.asDouble();
    switch (op) {
    case Op::Add:
      return Val::number(x + y);
    case Op::Sub:
      return Val::number(x - y);
    case Op::Mul:
      return Val::number(x * y);
    case Op::Div:
      return Val::number(x / y);
    case Op::Pow:
      return Val::number(std::pow(x, y));
    case Op::Maximum:
      return Val::number(std::max(x, y));
    case Op::Minimum:
      return Val::number(std::min(x, y));
    default:
      break;
    }
  }
  for (const Val *v : {&a, &b})
    if (v->kind == Val::Tensor && !isFloat(v->node->type.dtype)) {
      diags.error(loc,
                  "'" + name + "' needs float tensors, got " + v->describe());
      return Val::error();
    }
  Shape sa = a.kind == Val::Tensor ? a.node->type.shape : Shape();
  Shape sb = b.kind == Val::Tensor ? b.node->type.shape : Shape();
  auto shape = broadcastShapes(sa, sb);
  if (!shape) {
    diags.error(loc,
                "shapes " + a.describe() + " and " + b.describe() +
                    " do not broadcast for '" + name + "'",
                {a.range, b.range});
    return Val::error();
  }
  auto operand = [&](const Val &v) {
    return v.kind == Val::Tensor ? broadcastTo(v.node, *shape, loc)
                                 : constant(v.asDouble(), *shape, loc);
  };
  Node *x = operand(a), *y = operand(b);
  return Val::tensor(emit(op, {x, y}, {}, loc));
}

std::string Elaborator::qualify(llvm::StringRef name) const {
  const std::string &prefix = frames.back().prefix;
  return prefix.empty() ? name.str() : prefix + "." + name.str();
}

Node *Elaborator::declareLeaf(Op kind, llvm::StringRef fullName,
                              const TensorType &type, llvm::ArrayRef<Attr> init,
                              llvm::SMLoc loc) {
  if (Node *existing = graph.findLeaf(kind, fullName)) {
    // The same name again means the same parameters: weight sharing.
    if (existing->type != type) {
      diags.error(loc, "'" + fullName + "' is shared, but declared here as " +
                           type.str() + " and before as " +
                           existing->type.str());
      return nullptr;
    }
    return existing;
  }
  if (graph.findLeaf(kind == Op::Param ? Op::State : Op::Param, fullName) ||
      graph.findLeaf(Op::Input, fullName)) {
    diags.error(loc, "the name '" + fullName + "' is already taken");
    return nullptr;
  }
  llvm::SmallVector<Attr, 4> attrs(init.begin(), init.end());
  attrs.push_back({"name", fullName.str()});
  auto n = graph.add(kind, {}, attrs, diags.location(loc), type);
  if (!n) {
    diags.error(loc, llvm::toString(n.takeError()));
    return nullptr;
  }
  return *n;
}

//===-- Types and dimensions ---------------------------------------------===//

std::optional<int64_t> Elaborator::evalDim(const Expr &e) {
  Val v = eval(e);
  if (v.isError())
    return std::nullopt;
  if (v.kind != Val::Int) {
    diags.error(e.range.Start,
                "a dimension must be an integer, got " + v.describe(), e.range);
    return std::nullopt;
  }
  if (v.i < 1) {
    diags.error(e.range.Start,
                "dimension " + llvm::Twine(v.i) + " must be at least 1",
                e.range);
    return std::nullopt;
  }
  return v.i;
}

std::optional<TensorType> Elaborator::evalType(const TypeExpr &t) {
  TensorType type{t.dtype, {}};
  bool ok = true;
  for (const ExprPtr &d : t.dims) {
    auto v = evalDim(*d);
    ok &= bool(v);
    type.shape.push_back(v.value_or(1));
  }
  if (!ok)
    return std::nullopt;
  auto numel = numElements(type.shape);
  if (!numel || *numel > kMaxElements) {
    diags.error(t.range.Start,
                "the shape " + shapeStr(type.shape) +
                    " has more than 2^40 elements",
                t.range);
    return std::nullopt;
  }
  return type;
}

//===-- Statements -------------------------------------------------------===//

bool Elaborator::lowerModel(const FuncDecl &model,
                            const llvm::StringMap<int64_t> &dims) {
  graph.name = model.name;
  frames.emplace_back();
  frames.back().func = &model;
  callStack.push_back(&model);
  unsigned errorsBefore = diags.errorCount();
  // Dimension names come from the bindings; every dim of an input must be
  // known before the body runs.
  for (auto &[name, value] : dims)
    frames.back().vars[name] = Val::integer(value);
  for (const Formal &a : model.formals) {
    if (a.type.kind != TypeExpr::Tensor) {
      diags.error(a.loc, "a model's arguments are its data and must be "
                         "tensors; '" +
                             a.name + "' is not");
      continue;
    }
    for (const ExprPtr &d : a.type.dims)
      if (d->kind == ExprKind::Name && !frames.back().vars.count(d->name) &&
          !dims.count(d->name)) {
        diags.error(d->range.Start,
                    "dimension '" + d->name + "' of model '" + model.name +
                        "' is not bound; give -D " + d->name +
                        "=... or a train block with a batch size",
                    d->range);
        frames.back().vars[d->name] = Val::error();
      }
    auto type = evalType(a.type);
    if (!type)
      continue;
    if (frames.back().vars.count(a.name) &&
        frames.back().vars[a.name].kind != Val::Error) {
      diags.error(a.loc, "argument '" + a.name +
                             "' has the name of a "
                             "dimension");
      continue;
    }
    auto n = graph.add(Op::Input, {}, {{"name", a.name}}, diags.location(a.loc),
                       *type);
    if (!n) {
      diags.error(a.loc, llvm::toString(n.takeError()));
      continue;
    }
    frames.back().vars[a.name] = Val::tensor(*n);
  }
  if (diags.errorCount() == errorsBefore)
    execBlock(model.body);
  frames.pop_back();
  callStack.pop_back();
  if (diags.errorCount() != errorsBefore)
    return false;
  if (!graph.objective && !graph.output) {
    diags.error(model.loc, "model '" + model.name +
                               "' has neither 'minimize' nor 'return'");
    return false;
  }
  return true;
}

void Elaborator::execBlock(const Block &b) {
  for (const Stmt &s : b) {
    if (diags.tooMany() || reportedTooLarge)
      return;
    execStmt(s);
  }
}

void Elaborator::execStmt(const Stmt &s) {
  Frame &frame = frames.back();
  bool inModel = frames.size() == 1;
  switch (s.kind) {
  case Stmt::Param: {
    if (s.type.kind != TypeExpr::Tensor) {
      diags.error(s.loc, "a parameter must be a tensor");
      frame.vars[s.name] = Val::error();
      return;
    }
    if (frame.vars.count(s.name)) {
      diags.error(s.nameLoc, "'" + s.name + "' is already defined");
      return;
    }
    frame.vars[s.name] = Val::error();
    auto type = evalType(s.type);
    const Expr &init = *s.value;
    if (init.kind != ExprKind::Call || !findInit(init.name)) {
      std::string hint = init.kind == ExprKind::Call
                             ? nearest(init.name, initNames())
                             : std::string();
      diags.error(init.opLoc,
                  "a parameter's initialiser must be one of " +
                      llvm::join(initNames(), ", ") +
                      (hint.empty() ? "" : "; did you mean '" + hint + "'?"),
                  init.range);
      return;
    }
    // Bind the initialiser's arguments by position and keyword.
    const InitInfo *info = findInit(init.name);
    llvm::SmallVector<Attr, 4> attrs{{"init", init.name}};
    std::vector<std::optional<double>> values(info->args.size());
    bool ok = true;
    auto setArg = [&](size_t k, const Expr &e) {
      Val v = eval(e);
      if (v.isError() || !v.isNumber()) {
        if (!v.isError())
          diags.error(e.range.Start,
                      "'" + info->args[k].name + "' must be a number", e.range);
        ok = false;
        return;
      }
      values[k] = v.asDouble();
    };
    if (init.args.size() > info->args.size()) {
      diags.error(init.opLoc, "'" + init.name + "' takes at most " +
                                  llvm::Twine(info->args.size()) +
                                  " arguments");
      return;
    }
    for (size_t k = 0; k < init.args.size(); ++k)
      setArg(k, *init.args[k]);
    for (size_t k = 0; k < init.kwargs.size(); ++k) {
      const std::string &key = init.kwargs[k].first;
      const Expr &e = *init.kwargs[k].second;
      auto it = llvm::find_if(info->args,
                              [&](const InitArg &a) { return a.name == key; });
      if (it == info->args.end()) {
        diags.error(init.kwargLocs[k],
                    "'" + init.name + "' has no argument '" + key + "'");
        ok = false;
        continue;
      }
      setArg(it - info->args.begin(), e);
    }
    for (size_t k = 0; k < info->args.size(); ++k)
      attrs.push_back({info->args[k].name.str(),
                       values[k].value_or(info->args[k].defaultValue)});
    if (!type || !ok)
      return;
    frame.vars[s.name] = Val::tensor(
        declareLeaf(Op::Param, qualify(s.name), *type, attrs, s.nameLoc));
    return;
  }
  case Stmt::Let: {
    // `let NAME = layer(...)` names the layer's parameters NAME.*.
    Val v = eval(*s.value, s.name);
    v.range = s.value->range;
    frame.vars[s.name] = std::move(v);
    return;
  }
  case Stmt::Minimize:
  case Stmt::Return: {
    bool isMin = s.kind == Stmt::Minimize;
    if (isMin && !inModel) {
      diags.error(s.loc, "'minimize' is allowed only in the model being "
                         "compiled, not in layer '" +
                             frame.func->name + "'");
      return;
    }
    Val v = eval(*s.value);
    if (v.isError())
      return;
    if (inModel && v.kind != Val::Tensor) {
      diags.error(s.value->range.Start,
                  llvm::Twine(isMin ? "'minimize'" : "a model's 'return'") +
                      " needs a tensor, got " + v.describe(),
                  s.value->range);
      return;
    }
    if (isMin) {
      if (graph.objective) {
        diags.error(s.loc, "the model already has an objective");
        return;
      }
      if (!v.node->type.shape.empty() || !isFloat(v.node->type.dtype)) {
        diags.error(s.value->range.Start,
                    "'minimize' needs a float scalar, got " + v.describe() +
                        "; reduce it with sum(...) or mean(...)",
                    s.value->range);
        return;
      }
      graph.objective = v.node;
      return;
    }
    if (frame.returned) {
      diags.error(s.loc, "'" + frame.func->name + "' already returned a value");
      return;
    }
    frame.returned = true;
    frame.result = v;
    if (inModel)
      graph.output = v.node;
    return;
  }
  case Stmt::For: {
    Val lo = eval(*s.value), hi = eval(*s.end);
    if (lo.isError() || hi.isError())
      return;
    if (lo.kind != Val::Int || hi.kind != Val::Int) {
      diags.error(s.value->range.Start, "a loop range needs integer bounds");
      return;
    }
    int64_t trips = 0;
    if (hi.i > lo.i && __builtin_sub_overflow(hi.i, lo.i, &trips))
      trips = INT64_MAX;
    if (trips > kMaxLoopTrips) {
      diags.error(s.loc,
                  "this loop unrolls to " + llvm::Twine(trips) +
                      " iterations; Kiln unrolls at most " +
                      llvm::Twine(kMaxLoopTrips),
                  llvm::SMRange(s.value->range.Start, s.end->range.End));
      return;
    }
    std::optional<Val> shadowed;
    if (auto it = frame.vars.find(s.name); it != frame.vars.end())
      shadowed = it->second;
    for (int64_t t = lo.i; t < hi.i; ++t) {
      frames.back().vars[s.name] = Val::integer(t);
      unsigned before = diags.errorCount();
      execBlock(s.body);
      // One report per mistake, not one per iteration.
      if (diags.errorCount() != before || reportedTooLarge)
        break;
    }
    if (shadowed)
      frames.back().vars[s.name] = *shadowed;
    else
      frames.back().vars.erase(s.name);
    return;
  }
  }
}

//===-- Expressions ------------------------------------------------------===//

void Elaborator::unknownName(const Expr &e, bool isCall) {
  std::vector<llvm::StringRef> candidates;
  if (!isCall)
    for (auto &kv : frames.back().vars)
      candidates.push_back(kv.getKey());
  for (const FuncDecl &f : module.funcs)
    candidates.push_back(f.name);
  std::vector<llvm::StringRef> builtins = builtinNames();
  candidates.insert(candidates.end(), builtins.begin(), builtins.end());
  std::string hint = nearest(e.name, candidates);
  diags.error(
      e.opLoc,
      llvm::Twine(isCall ? "unknown function '" : "unknown name '") + e.name +
          "'" + (hint.empty() ? "" : "; did you mean '" + hint + "'?"),
      llvm::SMRange(e.opLoc, llvm::SMLoc::getFromPointer(e.opLoc.getPointer() +
                                                         e.name.size())));
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
    kept.push_back((parts[1] - parts[0] + parts[2] - 1) / parts[2]);
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
  if (!el.lowerModel(model, opts.dims))
    return nullptr;
  return g;
}
