//===- IRParser.cpp - Reading textual IR ----------------------------------===//
//
// A recursive-descent parser over the shared lexer in IR mode. On an error in
// a statement it reports it and skips to the next line that starts a
// statement, so one run shows several mistakes.
//
//===----------------------------------------------------------------------===//
#include "ir/IRParser.h"
#include "ir/OpRules.h"
#include "support/Lexer.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include <cmath>
#include <limits>

using namespace kiln;

namespace {

class IRParser {
public:
  IRParser(unsigned bufferId, Diagnostics &diags)
      : diags(diags),
        lexer(diags.sourceMgr().getMemoryBuffer(bufferId)->getBuffer(), diags,
              Lexer::Mode::IR) {
    advance();
  }

  std::vector<std::unique_ptr<Graph>> parseModule();

private:
  void advance() { tok = lexer.next(); }
  bool consume(Tok k) {
    if (!tok.is(k))
      return false;
    advance();
    return true;
  }
  bool expect(Tok k, llvm::StringRef what) {
    if (consume(k))
      return true;
    diags.error(tok.loc(), "expected " + tokName(k) + " " + what + ", found '" +
                               tok.text + "'");
    return false;
  }
  bool isIdent(llvm::StringRef s) const {
    return tok.is(Tok::Ident) && tok.text == s;
  }

  std::unique_ptr<Graph> parseGraph();
  bool parseStatement(Graph &g);
  bool parseNode(Graph &g);
  Node *parseValueRef();
  std::optional<AttrValue> parseAttrValue();
  std::optional<TensorType> parseType();
  std::optional<Location> parseLoc();
  void skipStatement();

  Diagnostics &diags;
  Lexer lexer;
  Token tok;
  llvm::StringMap<Node *> values;
  /// The value whose definition is being parsed, which it may not read.
  std::string defining;
  /// The names of the graphs parsed so far.
  llvm::StringSet<> graphNames;
  llvm::SMLoc stmtStart;
  /// The graph's leaves, and the names its gradient and update lines gave.
  LeafIndex leaves;
  llvm::StringSet<> gradientNames, updateNames;
  /// Nesting depth of fused bodies being parsed.
  unsigned bodyDepth = 0;
};

std::vector<std::unique_ptr<Graph>> IRParser::parseModule() {
  std::vector<std::unique_ptr<Graph>> graphs;
  while (!tok.is(Tok::Eof) && !diags.tooMany()) {
    if (auto g = parseGraph())
      graphs.push_back(std::move(g));
    else
      while (!tok.is(Tok::Eof) && !isIdent("graph"))
        advance();
  }
  if (graphs.empty() && !diags.hadError())
    diags.error(tok.loc(), "expected 'graph'");
  if (diags.hadError())
    graphs.clear();
  return graphs;
}

std::unique_ptr<Graph> IRParser::parseGraph() {
  if (!isIdent("graph")) {
    diags.error(tok.loc(), "expected 'graph', found '" + tok.text + "'");
    return nullptr;
  }
  advance();
  auto g = std::make_unique<Graph>();
  values.clear();
  leaves = LeafIndex();
  gradientNames.clear();
  updateNames.clear();
  if (!expect(Tok::At, "before the graph's name"))
    return nullptr;
  if (!tok.is(Tok::Ident)) {
    diags.error(tok.loc(), "expected the graph's name");
    return nullptr;
  }
  g->name = tok.text.str();
  if (!graphNames.insert(g->name).second) {
    diags.error(tok.loc(), "graph '@" + g->name + "' is defined twice");
    return nullptr;
  }
  advance();
  if (!expect(Tok::LBrace, "to open the graph"))
    return nullptr;
  while (!tok.is(Tok::RBrace) && !tok.is(Tok::Eof) && !diags.tooMany())
    if (!parseStatement(*g))
      skipStatement();
  expect(Tok::RBrace, "to close the graph");
  return g;
}

void IRParser::skipStatement() {
  // Statements are one per line: skip the rest of the failed one.
  unsigned line = diags.sourceMgr().getLineAndColumn(stmtStart).first;
  while (!tok.is(Tok::Eof) &&
         diags.sourceMgr().getLineAndColumn(tok.loc()).first == line)
    advance();
}

Node *IRParser::parseValueRef() {
  llvm::SMLoc at = tok.loc();
  if (!expect(Tok::Percent, "before a value"))
    return nullptr;
  if (!tok.is(Tok::Int) && !tok.is(Tok::Ident)) {
    diags.error(tok.loc(), "expected a value name after '%'");
    return nullptr;
  }
  std::string name = tok.text.str();
  advance();
  auto it = values.find(name);
  if (it == values.end())
    diags.error(at, "use of undefined value '%" + name + "'");
  else if (!it->second && name == defining)
    diags.error(at, "value '%" + name + "' is used in its own definition");
  // A value whose definition failed maps to null: already reported.
  return it == values.end() ? nullptr : it->second;
}

bool IRParser::parseStatement(Graph &g) {
  stmtStart = tok.loc();
  defining.clear();
  if (tok.is(Tok::Percent))
    return parseNode(g);
  llvm::SMLoc at = tok.loc();
  if (isIdent("minimize") || isIdent("return")) {
    bool isMin = tok.text == "minimize";
    advance();
    Node *v = parseValueRef();
    if (!v)
      return false;
    Node *&slot = isMin ? g.objective : g.output;
    if (slot) {
      diags.error(at, llvm::Twine("the graph already has ") +
                          (isMin ? "an objective" : "an output"));
      return false;
    }
    if (isMin && (!v->type.shape.empty() || !isFloat(v->type.dtype))) {
      diags.error(at,
                  "the objective must be a float scalar, got " + v->type.str());
      return false;
    }
    slot = v;
    // A fused body may return several values: its node's results.
    while (!isMin && tok.is(Tok::Comma)) {
      llvm::SMLoc commaLoc = tok.loc();
      advance();
      if (bodyDepth == 0) {
        diags.error(commaLoc,
                    "only the body of a fused node returns several values");
        return false;
      }
      Node *more = parseValueRef();
      if (!more)
        return false;
      g.moreOutputs.push_back(more);
    }
    return true;
  }
  if (isIdent("update") || isIdent("gradient")) {
    // update "state or param", %v | gradient "param or input", %v
    bool isUpdate = tok.text == "update";
    llvm::StringRef what = isUpdate ? "updated leaf" : "gradient";
    advance();
    if (!tok.is(Tok::String)) {
      diags.error(tok.loc(), "expected the " + what + "'s name as a string");
      return false;
    }
    std::string name = tok.stringValue;
    llvm::SMLoc nameLoc = tok.loc();
    advance();
    if (!expect(Tok::Comma, "after the name"))
      return false;
    Node *v = parseValueRef();
    if (!v)
      return false;
    Node *leaf = isUpdate ? leaves.find(Op::State, name) : nullptr;
    if (!leaf)
      leaf = leaves.find(Op::Param, name);
    if (!leaf && !isUpdate)
      leaf = leaves.find(Op::Input, name);
    if (!leaf) {
      diags.error(
          nameLoc,
          isUpdate ? "update of unknown state or parameter '" + name + "'"
                   : "gradient of unknown parameter or input '" + name + "'");
      return false;
    }
    if (!(isUpdate ? updateNames : gradientNames).insert(name).second) {
      diags.error(nameLoc, (isUpdate ? "'" + name + "' is updated twice"
                                     : "'" + name + "' has two gradients"));
      return false;
    }
    if (leaf->type != v->type) {
      diags.error(at, what + " '" + name + "' of type " + leaf->type.str() +
                          " given a value of type " + v->type.str());
      return false;
    }
    (isUpdate ? g.updates : g.gradients).push_back({name, v});
    return true;
  }
  diags.error(at, "expected a statement ('%name = ...', 'update', 'gradient', "
                  "'minimize' or 'return'), found '" +
                      tok.text + "'");
  return false;
}

bool IRParser::parseNode(Graph &g) {
  advance(); // '%'
  if (!tok.is(Tok::Int) && !tok.is(Tok::Ident)) {
    diags.error(tok.loc(), "expected a value name after '%'");
    return false;
  }
  std::string name = tok.text.str();
  llvm::SMLoc nameLoc = tok.loc();
  advance();
  if (values.count(name)) {
    diags.error(nameLoc, "value '%" + name + "' is defined twice");
    return false;
  }
  values[name] = nullptr; // until the definition succeeds
  defining = name;
  if (!expect(Tok::Equal, "after the value name"))
    return false;
  if (!tok.is(Tok::Ident)) {
    diags.error(tok.loc(), "expected an op name");
    return false;
  }
  llvm::SMLoc opLoc = tok.loc();
  auto op = opFromMnemonic(tok.text);
  if (!op) {
    diags.error(opLoc, "unknown op '" + tok.text + "'");
    return false;
  }
  advance();
  llvm::SmallVector<Node *, 4> operands;
  if (tok.is(Tok::Percent)) {
    do {
      Node *v = parseValueRef();
      if (!v)
        return false;
      operands.push_back(v);
    } while (consume(Tok::Comma));
  }
  llvm::SmallVector<Attr, 4> attrs;
  if (consume(Tok::LBrace)) {
    do {
      if (!tok.is(Tok::Ident)) {
        diags.error(tok.loc(), "expected an attribute name");
        return false;
      }
      std::string attrName = tok.text.str();
      if (llvm::any_of(attrs,
                       [&](const Attr &a) { return a.name == attrName; })) {
        diags.error(tok.loc(), "attribute '" + attrName + "' is given twice");
        return false;
      }
      advance();
      if (!expect(Tok::Equal, "after the attribute name"))
        return false;
      auto v = parseAttrValue();
      if (!v)
        return false;
      attrs.push_back({attrName, std::move(*v)});
    } while (consume(Tok::Comma));
    if (!expect(Tok::RBrace, "to close the attributes"))
      return false;
  }
  if (!expect(Tok::Colon, "before the result type"))
    return false;
  llvm::SMLoc typeLoc = tok.loc();
  auto type = parseType();
  if (!type)
    return false;
  Location loc;
  if (isIdent("loc")) {
    auto l = parseLoc();
    if (!l)
      return false;
    loc = *l;
  }
  // A fused node's body: statements in braces, in a scope of their own.
  std::unique_ptr<Graph> body;
  if (tok.is(Tok::LBrace)) {
    llvm::SMLoc bodyLoc = tok.loc();
    advance();
    body = std::make_unique<Graph>();
    body->name = g.name;
    llvm::StringMap<Node *> outer = std::move(values);
    llvm::SMLoc outerStart = stmtStart;
    std::string outerDefining = defining;
    values.clear();
    ++bodyDepth;
    bool ok = true;
    while (!tok.is(Tok::RBrace) && !tok.is(Tok::Eof) && !diags.tooMany())
      if (!parseStatement(*body)) {
        ok = false;
        skipStatement();
      }
    --bodyDepth;
    values = std::move(outer);
    stmtStart = outerStart;
    defining = outerDefining;
    if (!expect(Tok::RBrace, "to close the body") || !ok)
      return false;
    if (*op != Op::Fused) {
      diags.error(bodyLoc, "only 'fused' has a body");
      return false;
    }
  }
  if (*op == Op::Arg && bodyDepth == 0) {
    diags.error(opLoc, "'arg' is only legal in the body of a fused node");
    return false;
  }
  bool leaf = opInfo(*op).flags & Leaf;
  auto node = g.add(*op, operands, attrs, loc,
                    leaf ? std::optional<TensorType>(*type) : std::nullopt,
                    std::move(body));
  if (!node) {
    diags.error(opLoc, llvm::toString(node.takeError()));
    return false;
  }
  // Every attribute an op has is checked by its shape rule; one the rule
  // never read is not the op's (a misspelt name, say).
  for (const Attr &a : (*node)->attrs)
    if (!a.read) {
      diags.error(opLoc, "'" + (*node)->info().mnemonic +
                             "' has no attribute '" + a.name + "'");
      return false;
    }
  if (bodyDepth == 0)
    leaves.add(*node);
  if ((*node)->type != *type) {
    diags.error(typeLoc, "declared type " + type->str() +
                             " does not match the inferred type " +
                             (*node)->type.str());
    g.nodes.pop_back();
    return false;
  }
  values[name] = *node;
  return true;
}

std::optional<AttrValue> IRParser::parseAttrValue() {
  bool negative = consume(Tok::Minus);
  if (tok.is(Tok::Int)) {
    int64_t v = negative ? -tok.intValue : tok.intValue;
    advance();
    return AttrValue(v);
  }
  if (tok.is(Tok::Float)) {
    double v = negative ? -tok.floatValue : tok.floatValue;
    advance();
    return AttrValue(v);
  }
  if (isIdent("inf") || isIdent("nan")) {
    double v = tok.text == "inf" ? std::numeric_limits<double>::infinity()
                                 : std::numeric_limits<double>::quiet_NaN();
    advance();
    return AttrValue(negative ? -v : v);
  }
  if (!negative && tok.is(Tok::String)) {
    std::string s = tok.stringValue;
    advance();
    return AttrValue(s);
  }
  if (!negative && consume(Tok::LBracket)) {
    llvm::SmallVector<int64_t, 4> list;
    if (!tok.is(Tok::RBracket)) {
      do {
        bool neg = consume(Tok::Minus);
        if (!tok.is(Tok::Int)) {
          diags.error(tok.loc(), "expected an integer in the list");
          return std::nullopt;
        }
        list.push_back(neg ? -tok.intValue : tok.intValue);
        advance();
      } while (consume(Tok::Comma));
    }
    if (!expect(Tok::RBracket, "to close the list"))
      return std::nullopt;
    return AttrValue(list);
  }
  diags.error(tok.loc(), "expected an attribute value (a number, a string or "
                         "a list of integers)");
  return std::nullopt;
}

std::optional<TensorType> IRParser::parseType() {
  auto dtype = tok.is(Tok::Ident) ? parseDType(tok.text) : std::nullopt;
  if (!dtype) {
    diags.error(tok.loc(), "expected a type such as f32[2,3]");
    return std::nullopt;
  }
  advance();
  TensorType t{*dtype, {}};
  if (!expect(Tok::LBracket, "after the dtype"))
    return std::nullopt;
  if (!tok.is(Tok::RBracket)) {
    do {
      if (!tok.is(Tok::Int) || tok.intValue < 1) {
        diags.error(tok.loc(), "expected a dimension (a positive integer)");
        return std::nullopt;
      }
      t.shape.push_back(tok.intValue);
      advance();
    } while (consume(Tok::Comma));
  }
  if (!expect(Tok::RBracket, "to close the shape"))
    return std::nullopt;
  return t;
}

std::optional<Location> IRParser::parseLoc() {
  advance(); // loc
  if (!expect(Tok::LParen, "after 'loc'"))
    return std::nullopt;
  if (!tok.is(Tok::String)) {
    diags.error(tok.loc(), "expected a file name in loc(...)");
    return std::nullopt;
  }
  Location loc;
  loc.file = internFileName(tok.stringValue);
  advance();
  for (unsigned *field : {&loc.line, &loc.col}) {
    if (!expect(Tok::Colon, "in loc(\"file\":line:col)"))
      return std::nullopt;
    if (!tok.is(Tok::Int) || tok.intValue < 1 || tok.intValue > UINT32_MAX) {
      diags.error(tok.loc(), "expected a line or column number");
      return std::nullopt;
    }
    *field = unsigned(tok.intValue);
    advance();
  }
  if (!expect(Tok::RParen, "to close loc(...)"))
    return std::nullopt;
  return loc;
}

} // namespace

std::vector<std::unique_ptr<Graph>> kiln::parseIR(unsigned bufferId,
                                                  Diagnostics &diags) {
  return IRParser(bufferId, diags).parseModule();
}
