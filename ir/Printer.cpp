//===- Printer.cpp - Textual IR and Graphviz output -----------------------===//
//
// One line per node: `%3 = matmul %0, %1 : f32[4,256] loc("f.kiln":5:12)`,
// with attributes in braces, sorted by name, before the colon. A fused
// node's body follows it in braces, indented, with numbering of its own.
//
//===----------------------------------------------------------------------===//
#include "ir/Printer.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/Format.h"
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace kiln;

std::string kiln::formatFloat(double v) {
  if (std::isnan(v))
    return "nan";
  if (std::isinf(v))
    return v > 0 ? "inf" : "-inf";
  // Shortest text that reads back to exactly v.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  *res.ptr = 0;
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos)
    s += ".0";
  return s;
}

static void printString(llvm::StringRef s, llvm::raw_ostream &os) {
  os << '"';
  os.write_escaped(s);
  os << '"';
}

void kiln::printAttrValue(const AttrValue &v, llvm::raw_ostream &os) {
  if (auto *i = std::get_if<int64_t>(&v))
    os << *i;
  else if (auto *d = std::get_if<double>(&v))
    os << formatFloat(*d);
  else if (auto *l = std::get_if<llvm::SmallVector<int64_t, 4>>(&v))
    os << shapeStr(*l);
  else
    printString(std::get<std::string>(v), os);
}

/// The statements of g, each line indented by `indent`; a fused node's body
/// follows it in braces, numbered from %0 on its own.
static void printBody(const Graph &g, llvm::raw_ostream &os, unsigned indent) {
  llvm::DenseMap<const Node *, unsigned> ids;
  auto ref = [&](const Node *n) { return "%" + std::to_string(ids.lookup(n)); };
  std::string pad(indent, ' ');
  for (auto &np : g.nodes) {
    const Node &n = *np;
    unsigned id = ids.size();
    ids[&n] = id;
    os << pad << "%" << id << " = " << n.info().mnemonic;
    for (size_t i = 0; i < n.operands.size(); ++i)
      os << (i ? ", " : " ") << ref(n.operands[i]);
    if (!n.attrs.empty()) {
      os << " {";
      for (size_t i = 0; i < n.attrs.size(); ++i) {
        os << (i ? ", " : "") << n.attrs[i].name << " = ";
        printAttrValue(n.attrs[i].value, os);
      }
      os << "}";
    }
    os << " : " << n.type.str();
    if (n.loc.isKnown()) {
      os << " loc(";
      printString(n.loc.file, os);
      os << ":" << n.loc.line << ":" << n.loc.col << ")";
    }
    if (n.body) {
      os << " {\n";
      printBody(*n.body, os, indent + 2);
      os << pad << "}";
    }
    os << "\n";
  }
  for (const StateUpdate &u : g.updates) {
    os << pad << "update ";
    printString(u.name, os);
    os << ", " << ref(u.value) << "\n";
  }
  for (const NamedGradient &gr : g.gradients) {
    os << pad << "gradient ";
    printString(gr.name, os);
    os << ", " << ref(gr.value) << "\n";
  }
  if (g.objective)
    os << pad << "minimize " << ref(g.objective) << "\n";
  if (g.output) {
    os << pad << "return " << ref(g.output);
    for (const Node *n : g.moreOutputs)
      os << ", " << ref(n);
    os << "\n";
  }
}

void kiln::printGraph(const Graph &g, llvm::raw_ostream &os) {
  os << "graph @" << g.name << " {\n";
  printBody(g, os, 2);
  os << "}\n";
}

void kiln::printDot(const Graph &g, llvm::raw_ostream &os) {
  llvm::DenseMap<const Node *, unsigned> ids;
  os << "digraph \"" << g.name
     << "\" {\n  node [shape=box, fontname=\"monospace\"];\n";
  for (auto &np : g.nodes) {
    const Node &n = *np;
    unsigned id = ids.size();
    ids[&n] = id;
    os << "  n" << id << " [label=\"%" << id << " = " << n.info().mnemonic;
    if (auto *name = n.findAttr("name"))
      os << " " << std::get<std::string>(*name);
    os << "\\n" << n.type.str() << "\"";
    if (n.info().flags & Leaf)
      os << ", style=filled, fillcolor="
         << (n.op == Op::Param ? "lightblue" : "lightgrey");
    os << "];\n";
    for (const Node *o : n.operands)
      os << "  n" << ids.lookup(o) << " -> n" << id << ";\n";
  }
  if (g.objective)
    os << "  minimize [shape=oval];\n  n" << ids.lookup(g.objective)
       << " -> minimize;\n";
  if (g.output)
    os << "  output [shape=oval, label=\"return\"];\n  n"
       << ids.lookup(g.output) << " -> output;\n";
  for (const StateUpdate &u : g.updates)
    os << "  \"" << u.name << "\" [shape=oval];\n  n" << ids.lookup(u.value)
       << " -> \"" << u.name << "\";\n";
  for (const NamedGradient &gr : g.gradients)
    os << "  \"d " << gr.name << "\" [shape=oval];\n  n" << ids.lookup(gr.value)
       << " -> \"d " << gr.name << "\";\n";
  os << "}\n";
}
