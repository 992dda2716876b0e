//===- IndexMap.h - The index arithmetic of data-movement ops ---*- C++ -*-===//
//
// Broadcast, transpose, slice and reshape each read element i of their
// result from one element of their operand: the one at
//
//   base + sum over axes d of idx_d(i) * strides[d]
//
// where idx(i) unravels i in the result's row-major shape (a reshape is the
// row-major strides of its result). That map is described once here and
// used by the reference interpreter and by the lowering of these ops, and
// is what a kernel reading through them composes.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_IR_INDEXMAP_H
#define KILN_IR_INDEXMAP_H

#include "ir/Graph.h"
#include <optional>

namespace kiln {

struct StridedMap {
  Shape shape;   ///< the result's shape
  Shape strides; ///< per result axis, in operand elements (0: broadcast)
  int64_t base = 0;

  /// The operand offset of each result element, in row-major order.
  std::vector<int64_t> offsets() const;
};

/// The map of a broadcast, transpose, slice or reshape node; none for other
/// ops.
std::optional<StridedMap> stridedMapOf(const Node &n);

} // namespace kiln

#endif
