//===- Builtins.cpp - The language's built-in functions -------------------===//
//
// One table: each built-in's name, its arguments with PyTorch's defaults,
// and the nodes it emits. Argument binding (positional, then keyword) and
// argument-kind errors are handled once, for every entry.
//
//===----------------------------------------------------------------------===//
#include "frontend/Elaborator.h"
#include <functional>

using namespace kiln;

namespace {

struct Args;
using Handler = std::function<Val(Args &)>;

struct ParamSpec {
  const char *name;
  std::optional<Val> def; ///< None: required.
};

struct Builtin {
  const char *name;
  std::vector<ParamSpec> params;
  Handler fn;
};

/// A call's arguments bound to the built-in's parameters.
struct Args {
  Elaborator &el;
  const Expr &call;
  const Builtin &fn;
  std::vector<Val> v;
  std::vector<llvm::SMRange> ranges;
  bool failed = false;

  llvm::SMLoc loc() const { return call.opLoc; }
  void bad(size_t i, const llvm::Twine &want) {
    if (!failed)
      el.diags.error(ranges[i].Start.isValid() ? ranges[i].Start : call.opLoc,
                     "argument '" + llvm::Twine(fn.params[i].name) + "' of '" +
                         fn.name + "' must be " + want + ", got " +
                         v[i].describe(),
                     ranges[i]);
    failed = true;
  }
  bool given(size_t i) const { return v[i].kind != Val::None; }
  Node *tensor(size_t i) {
    if (v[i].kind == Val::Tensor)
      return v[i].node;
    bad(i, "a tensor");
    return nullptr;
  }
  int64_t integer(size_t i) {
    if (v[i].kind == Val::Int)
      return v[i].i;
    bad(i, "an integer");
    return 0;
  }
  double number(size_t i) {
    if (v[i].isNumber())
      return v[i].asDouble();
    bad(i, "a number");
    return 0;
  }
  bool boolean(size_t i) {
    if (v[i].kind == Val::Bool)
      return v[i].i;
    bad(i, "true or false");
    return false;
  }
  llvm::SmallVector<int64_t, 4> ints(size_t i) {
    llvm::SmallVector<int64_t, 4> out;
    if (v[i].kind == Val::Int)
      return {v[i].i};
    if (v[i].kind == Val::List) {
      for (const Val &x : v[i].list) {
        if (x.kind != Val::Int) {
          bad(i, "a list of integers");
          return {};
        }
        out.push_back(x.i);
      }
      return out;
    }
    bad(i, "a list of integers");
    return {};
  }
  Val emit(Op op, llvm::ArrayRef<Node *> operands,
           llvm::ArrayRef<Attr> attrs = {}) {
    if (failed)
      return Val::error();
    return Val::tensor(el.emit(op, operands, attrs, loc()));
  }
};

Val none() { return Val::none(); }
Val integer(int64_t i) { return Val::integer(i); }
Val number(double d) { return Val::number(d); }

Handler unary(Op op) {
  return [op](Args &a) { return a.emit(op, {a.tensor(0)}); };
}
Handler binary(Op op) {
  return [op](Args &a) { return a.el.arith(op, a.v[0], a.v[1], a.loc()); };
}

Handler reduce(Op op) {
  return [op](Args &a) {
    Node *x = a.tensor(0);
    llvm::SmallVector<int64_t, 4> axes;
    if (a.given(1))
      axes = a.ints(1);
    int64_t keep = a.boolean(2);
    return a.emit(op, {x}, {{"axes", axes}, {"keepdims", keep}});
  };
}

Val reshape(Args &a) {
  Node *x = a.tensor(0);
  auto shape = a.ints(1);
  if (!x || a.failed)
    return Val::error();
  // One -1 takes the remaining elements, as torch.reshape.
  int64_t known = 1, inferred = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1 && inferred < 0) {
      inferred = i;
    } else if (shape[i] < 1) {
      a.el.diags.error(a.ranges[1].Start,
                       "reshape to " + shapeStr(shape) +
                           ": dimensions must be positive "
                           "(one may be -1)",
                       a.ranges[1]);
      return Val::error();
    } else if (__builtin_mul_overflow(known, shape[i], &known) ||
               known > kMaxElements) {
      a.el.diags.error(a.ranges[1].Start,
                       "reshape to " + shapeStr(shape) +
                           ": the dimensions multiply to more than 2^40 "
                           "elements",
                       a.ranges[1]);
      return Val::error();
    }
  }
  int64_t total = *numElements(x->type.shape);
  if (inferred >= 0) {
    if (total % known) {
      a.el.diags.error(a.loc(), "cannot reshape " + x->type.str() + " to " +
                                    shapeStr(shape));
      return Val::error();
    }
    shape[inferred] = total / known;
  }
  return a.emit(Op::Reshape, {x}, {{"shape", shape}});
}

Val flatten(Args &a) {
  Node *x = a.tensor(0);
  int64_t start = a.integer(1);
  if (!x || a.failed)
    return Val::error();
  int64_t rank = x->type.rank();
  if (start < 0)
    start += rank;
  if (start < 0 || start >= std::max<int64_t>(rank, 1)) {
    a.bad(1, "an axis of " + x->type.str());
    return Val::error();
  }
  llvm::SmallVector<int64_t, 4> shape(x->type.shape.begin(),
                                      x->type.shape.begin() + start);
  int64_t rest = 1;
  for (int64_t i = start; i < rank; ++i)
    rest *= x->type.shape[i];
  shape.push_back(rest);
  return a.emit(Op::Reshape, {x}, {{"shape", shape}});
}

Val transpose(Args &a) {
  Node *x = a.tensor(0);
  if (!x)
    return Val::error();
  llvm::SmallVector<int64_t, 4> perm;
  if (a.given(1)) {
    perm = a.ints(1);
    for (int64_t &p : perm)
      if (p < 0)
        p += x->type.rank();
  } else {
    for (int64_t i = x->type.rank(); i-- > 0;)
      perm.push_back(i);
  }
  return a.emit(Op::Transpose, {x}, {{"perm", perm}});
}

Val concat(Args &a) {
  if (a.v[0].kind != Val::List || a.v[0].list.empty()) {
    a.bad(0, "a list of tensors");
    return Val::error();
  }
  std::vector<Node *> parts;
  for (const Val &t : a.v[0].list) {
    if (t.kind != Val::Tensor) {
      a.bad(0, "a list of tensors");
      return Val::error();
    }
    parts.push_back(t.node);
  }
  return a.emit(Op::Concat, parts, {{"axis", a.integer(1)}});
}

Handler softmax(Op op) {
  return [op](Args &a) {
    return a.emit(op, {a.tensor(0)}, {{"axis", a.integer(1)}});
  };
}

Val conv2d(Args &a) {
  return a.emit(Op::Conv2d, {a.tensor(0), a.tensor(1)},
                {{"stride", a.integer(2)}, {"pad", a.integer(3)}});
}

Handler pool(Op op) {
  return [op](Args &a) {
    int64_t size = a.integer(1);
    int64_t stride = a.given(2) ? a.integer(2) : size;
    return a.emit(op, {a.tensor(0)},
                  {{"size", size}, {"stride", stride}, {"pad", a.integer(3)}});
  };
}

Val batchNorm(Args &a) {
  Elaborator &el = a.el;
  Node *x = a.tensor(0), *gamma = a.tensor(1), *beta = a.tensor(2);
  double eps = a.number(3), momentum = a.number(4);
  if (a.failed)
    return Val::error();
  if (gamma->op != Op::Param) {
    el.diags.error(a.ranges[1].Start,
                   "batch_norm's gamma must be a parameter: "
                   "its name names the running statistics",
                   a.ranges[1]);
    return Val::error();
  }
  if (x->type.rank() < 2) {
    a.bad(0, "a tensor [N, C, ...]");
    return Val::error();
  }
  // Running statistics live beside gamma: bn1.gamma -> bn1.running_mean.
  std::string base = gamma->stringAttr("name");
  size_t dot = base.rfind('.');
  base = dot == std::string::npos ? base : base.substr(0, dot);
  int64_t c = x->type.shape[1];
  TensorType statType{x->type.dtype, {c}};
  Node *mean = el.declareLeaf(Op::State, base + ".running_mean", statType,
                              {{"init", std::string("zeros")}}, a.loc());
  Node *var = el.declareLeaf(Op::State, base + ".running_var", statType,
                             {{"init", std::string("ones")}}, a.loc());
  std::string mode = el.trainMode ? "train" : "eval";
  Val out = a.emit(Op::BatchNorm, {x, gamma, beta, mean, var},
                   {{"eps", eps}, {"momentum", momentum}, {"mode", mode}});
  if (!el.trainMode || out.isError())
    return out;
  // In training, running = (1 - momentum) * running + momentum * batch
  // statistic, with the unbiased variance, as torch.nn.BatchNorm.
  int64_t count = *numElements(x->type.shape) / c;
  if (count < 2) {
    el.diags.error(a.loc(), "batch_norm in training needs more than one value "
                            "per channel, got " +
                                x->type.str());
    return Val::error();
  }
  llvm::SmallVector<int64_t, 4> axes;
  for (int64_t i = 0; i < x->type.rank(); ++i)
    if (i != 1)
      axes.push_back(i);
  llvm::SMLoc loc = a.loc();
  Node *mu =
      el.emit(Op::Mean, {x}, {{"axes", axes}, {"keepdims", int64_t(1)}}, loc);
  Node *diff =
      el.emit(Op::Sub, {x, el.broadcastTo(mu, x->type.shape, loc)}, {}, loc);
  Node *sq = el.emit(Op::Mul, {diff, diff}, {}, loc);
  Node *ss =
      el.emit(Op::Sum, {sq}, {{"axes", axes}, {"keepdims", int64_t(0)}}, loc);
  Node *batchVar =
      el.arith(Op::Div, Val::tensor(ss), Val::number(double(count - 1)), loc)
          .node;
  Node *batchMean = el.emit(Op::Reshape, {mu},
                            {{"shape", llvm::SmallVector<int64_t, 4>{c}}}, loc);
  auto blend = [&](Node *running, Node *batch) {
    Val keep =
        el.arith(Op::Mul, Val::tensor(running), Val::number(1 - momentum), loc);
    Val add = el.arith(Op::Mul, Val::tensor(batch), Val::number(momentum), loc);
    return el.arith(Op::Add, keep, add, loc).node;
  };
  Node *newMean = blend(mean, batchMean), *newVar = blend(var, batchVar);
  if (!newMean || !newVar)
    return Val::error();
  for (auto &update : {std::pair{base + ".running_mean", newMean},
                       std::pair{base + ".running_var", newVar}}) {
    const std::string &name = update.first;
    Node *value = update.second;
    auto it = llvm::find_if(
        el.graph.updates, [&](const StateUpdate &u) { return u.name == name; });
    if (it != el.graph.updates.end())
      it->value = value; // a shared norm: the last use wins
    else
      el.graph.updates.push_back({name, value});
  }
  return out;
}

Val layerNorm(Args &a) {
  return a.emit(Op::LayerNorm, {a.tensor(0), a.tensor(1), a.tensor(2)},
                {{"eps", a.number(3)}});
}

Val dropout(Args &a) {
  Node *x = a.tensor(0);
  double p = a.number(1);
  std::string mode = a.el.trainMode ? "train" : "eval";
  return a.emit(
      Op::Dropout, {x},
      {{"p", p}, {"mode", mode}, {"seed", int64_t(a.el.dropoutCount++)}});
}

Val embedding(Args &a) {
  return a.emit(Op::Embedding, {a.tensor(0), a.tensor(1)});
}

Val oneHot(Args &a) {
  return a.emit(Op::OneHot, {a.tensor(0)}, {{"classes", a.integer(1)}});
}

Val crossEntropy(Args &a) {
  return a.emit(Op::CrossEntropy, {a.tensor(0), a.tensor(1)},
                {{"label_smoothing", a.number(2)}});
}

Handler pairLoss(Op op) {
  return [op](Args &a) { return a.emit(op, {a.tensor(0), a.tensor(1)}); };
}

const std::vector<Builtin> &builtins() {
  static const std::vector<Builtin> table = {
      {"exp", {{"x"}}, unary(Op::Exp)},
      {"log", {{"x"}}, unary(Op::Log)},
      {"sqrt", {{"x"}}, unary(Op::Sqrt)},
      {"abs", {{"x"}}, unary(Op::Abs)},
      {"tanh", {{"x"}}, unary(Op::Tanh)},
      {"sigmoid", {{"x"}}, unary(Op::Sigmoid)},
      {"relu", {{"x"}}, unary(Op::Relu)},
      {"gelu", {{"x"}}, unary(Op::Gelu)},
      {"softplus", {{"x"}}, unary(Op::Softplus)},
      {"erf", {{"x"}}, unary(Op::Erf)},
      {"stop_gradient", {{"x"}}, unary(Op::StopGradient)},
      {"leaky_relu",
       {{"x"}, {"slope", number(0.01)}},
       [](Args &a) {
         return a.emit(Op::LeakyRelu, {a.tensor(0)}, {{"slope", a.number(1)}});
       }},
      {"elu",
       {{"x"}, {"alpha", number(1.0)}},
       [](Args &a) {
         return a.emit(Op::Elu, {a.tensor(0)}, {{"alpha", a.number(1)}});
       }},
      {"pow", {{"x"}, {"y"}}, binary(Op::Pow)},
      {"maximum", {{"a"}, {"b"}}, binary(Op::Maximum)},
      {"minimum", {{"a"}, {"b"}}, binary(Op::Minimum)},
      {"sum",
       {{"x"}, {"axis", none()}, {"keepdims", Val::boolean(false)}},
       reduce(Op::Sum)},
      {"mean",
       {{"x"}, {"axis", none()}, {"keepdims", Val::boolean(false)}},
       reduce(Op::Mean)},
      {"max",
       {{"x"}, {"axis", none()}, {"keepdims", Val::boolean(false)}},
       reduce(Op::Max)},
      {"reshape", {{"x"}, {"shape"}}, reshape},
      {"flatten", {{"x"}, {"start_dim", integer(1)}}, flatten},
      {"transpose", {{"x"}, {"perm", none()}}, transpose},
      {"concat", {{"tensors"}, {"axis", integer(0)}}, concat},
      {"softmax", {{"x"}, {"axis", integer(-1)}}, softmax(Op::Softmax)},
      {"log_softmax", {{"x"}, {"axis", integer(-1)}}, softmax(Op::LogSoftmax)},
      {"conv2d",
       {{"x"}, {"w"}, {"stride", integer(1)}, {"pad", integer(0)}},
       conv2d},
      {"max_pool2d",
       {{"x"}, {"size", integer(2)}, {"stride", none()}, {"pad", integer(0)}},
       pool(Op::MaxPool2d)},
      {"avg_pool2d",
       {{"x"}, {"size", integer(2)}, {"stride", none()}, {"pad", integer(0)}},
       pool(Op::AvgPool2d)},
      {"batch_norm",
       {{"x"},
        {"gamma"},
        {"beta"},
        {"eps", number(1e-5)},
        {"momentum", number(0.1)}},
       batchNorm},
      {"layer_norm",
       {{"x"}, {"gamma"}, {"beta"}, {"eps", number(1e-5)}},
       layerNorm},
      {"dropout", {{"x"}, {"p", number(0.5)}}, dropout},
      {"embedding", {{"ids"}, {"table"}}, embedding},
      {"one_hot", {{"ids"}, {"classes"}}, oneHot},
      {"cross_entropy",
       {{"logits"}, {"labels"}, {"label_smoothing", number(0.0)}},
       crossEntropy},
      {"binary_cross_entropy_with_logits",
       {{"z"}, {"t"}},
       pairLoss(Op::BCEWithLogits)},
      {"mse", {{"a"}, {"b"}}, pairLoss(Op::MSE)},
  };
  return table;
}

} // namespace

std::vector<llvm::StringRef> kiln::builtinNames() {
  std::vector<llvm::StringRef> names;
  for (const Builtin &b : builtins())
    names.push_back(b.name);
  return names;
}

Val kiln::callBuiltin(Elaborator &el, const Expr &call, std::vector<Val> &vals,
                      bool &handled) {
  const auto &table = builtins();
  auto it = llvm::find_if(
      table, [&](const Builtin &b) { return call.name == b.name; });
  handled = it != table.end();
  if (!handled)
    return Val::error();
  const Builtin &fn = *it;
  Args a{el, call, fn, {}, {}};
  a.v.resize(fn.params.size());
  a.ranges.resize(fn.params.size());
  std::vector<bool> set(fn.params.size());
  size_t npos = call.args.size();
  if (npos > fn.params.size()) {
    el.diags.error(call.opLoc, "'" + llvm::Twine(fn.name) + "' takes at most " +
                                   llvm::Twine(fn.params.size()) +
                                   " arguments, but " + llvm::Twine(npos) +
                                   " were given");
    return Val::error();
  }
  for (size_t i = 0; i < npos; ++i) {
    a.v[i] = vals[i];
    a.ranges[i] = call.args[i]->range;
    set[i] = true;
  }
  for (size_t k = 0; k < call.kwargs.size(); ++k) {
    const std::string &key = call.kwargs[k].first;
    auto p = llvm::find_if(fn.params,
                           [&](const ParamSpec &s) { return key == s.name; });
    if (p == fn.params.end()) {
      std::string known;
      for (const ParamSpec &s : fn.params)
        known += (known.empty() ? "" : ", ") + std::string(s.name);
      el.diags.error(call.kwargLocs[k], "'" + llvm::Twine(fn.name) +
                                            "' has no argument '" + key +
                                            "' (it takes " + known + ")");
      return Val::error();
    }
    size_t i = p - fn.params.begin();
    if (set[i]) {
      el.diags.error(call.kwargLocs[k],
                     "argument '" + key + "' is given twice");
      return Val::error();
    }
    a.v[i] = vals[npos + k];
    a.ranges[i] = call.kwargs[k].second->range;
    set[i] = true;
  }
  for (size_t i = 0; i < fn.params.size(); ++i) {
    if (set[i])
      continue;
    if (!fn.params[i].def) {
      el.diags.error(call.opLoc, "missing argument '" +
                                     llvm::Twine(fn.params[i].name) + "' of '" +
                                     fn.name + "'");
      return Val::error();
    }
    a.v[i] = *fn.params[i].def;
  }
  Val out = fn.fn(a);
  return a.failed ? Val::error() : out;
}
