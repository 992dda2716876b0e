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
// Expressions (LowerExpr.cpp) that fail yield an error value, which later
// expressions pass on silently, so each mistake is reported once.
//
//===----------------------------------------------------------------------===//
#include "frontend/Elaborator.h"
#include "ir/Initializers.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"
#include <cmath>
#include <limits>

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

std::string kiln::nearest(llvm::StringRef name,
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
  if (graph.nodes.size() >= maxNodes) {
    if (!reportedTooLarge)
      diags.error(loc, "the model unrolls to more than " +
                           llvm::Twine(maxNodes) + " ops");
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
  if (graph.nodes.size() >= maxNodes)
    return emit(Op::Constant, {}, {}, loc); // reports the limit
  // A magnitude that rounds to infinity in f32 (FLT_MAX and up to half an
  // ulp above it round to FLT_MAX), or no number at all.
  if (std::isnan(v)) {
    diags.error(loc, "the number is not a number (NaN)");
    return nullptr;
  }
  if (!(std::fabs(v) < 0x1.ffffffp127)) {
    auto g9 = [](double x) {
      std::string s;
      llvm::raw_string_ostream(s) << llvm::format("%.9g", x);
      return s;
    };
    diags.error(loc, "the number " + g9(v) +
                         " is out of range for f32 (largest " +
                         g9(std::numeric_limits<float>::max()) + ")");
    return nullptr;
  }
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
  if (Node *existing = leafIndex.find(kind, fullName)) {
    // The same name again means the same parameters: weight sharing.
    if (existing->type != type) {
      diags.error(loc, "'" + fullName + "' is shared, but declared here as " +
                           type.str() + " and before as " +
                           existing->type.str());
      return nullptr;
    }
    return existing;
  }
  if (leafIndex.find(kind == Op::Param ? Op::State : Op::Param, fullName) ||
      leafIndex.find(Op::Input, fullName)) {
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
  leafIndex.add(*n);
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
    leafIndex.add(*n);
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
      // Nested loops multiply: the budget is on all iterations together.
      if (++unrolled > maxUnrolled) {
        diags.error(s.loc,
                    "the model's loops unroll to more than " +
                        llvm::Twine(maxUnrolled) +
                        " iterations in all, nested loops multiplied",
                    llvm::SMRange(s.value->range.Start, s.end->range.End));
        break;
      }
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
