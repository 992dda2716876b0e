//===- Printer.h - Textual IR and Graphviz output ----------------*- C++
//-*-===//
//
// The textual form numbers values %0, %1, ... in node order, so printing is
// stable, and IRParser reads it back to a graph that prints identically.
// See docs/ir.md for the grammar.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_PRINTER_H
#define KILN_IR_PRINTER_H

#include "ir/Graph.h"

namespace kiln {

void printGraph(const Graph &g, llvm::raw_ostream &os);
/// Writes the graph for Graphviz's `dot`.
void printDot(const Graph &g, llvm::raw_ostream &os);
/// Prints an attribute value as the parser reads it.
void printAttrValue(const AttrValue &v, llvm::raw_ostream &os);
/// The shortest decimal text that reads back to exactly `v`, always with a
/// '.' or an exponent so it is not taken for an integer.
std::string formatFloat(double v);

} // namespace kiln

#endif
