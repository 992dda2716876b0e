//===- FusionRemarks.h - Why values stay in memory -------------*- C++ -*-===//
//
// After the kernel passes, every value one kernel writes and another reads
// goes through memory. A remark names each such producer and consumer and
// the reason no fusion rule joined them (`kiln dump --stage=opt --remarks`).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_FUSIONREMARKS_H
#define KILN_PASSES_FUSIONREMARKS_H

#include "ir/Graph.h"
#include <string>
#include <vector>

namespace kiln {

struct FusionRemark {
  Location loc;     ///< The producer's (else the consumer's) location.
  std::string text; ///< "not fused into <consumer>: <reason>"
};

/// The remarks of a kernel graph (the kernel pipeline's result), in the
/// order of the consumers, one per producer and consumer.
std::vector<FusionRemark> fusionRemarks(const Graph &g);

} // namespace kiln

#endif
