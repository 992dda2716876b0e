//===- IRParser.h - Reading textual IR ---------------------------*- C++
//-*-===//
//
// Parses what printGraph writes (docs/ir.md has the grammar). Value names
// may be any %number or %name; each node's declared type is checked against
// its op's shape rule. Errors go through Diagnostics with carets.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_IRPARSER_H
#define KILN_IR_IRPARSER_H

#include "ir/Graph.h"
#include "support/Diagnostics.h"
#include <vector>

namespace kiln {

/// Parses every graph in buffer `bufferId` of the diagnostics' SourceMgr.
/// Returns the graphs, or an empty list after reporting errors.
std::vector<std::unique_ptr<Graph>> parseIR(unsigned bufferId,
                                            Diagnostics &diags);

} // namespace kiln

#endif
