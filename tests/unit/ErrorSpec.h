//===- ErrorSpec.h - How close float32 results must be ------*- C++ -*-===//
//
// Differential tests compare a float32 result (the JIT's) with the float64
// reference interpreter, the closest thing to the exact answer we have. How
// far the result may stray is not a fixed constant: a long reduction or a
// batch norm over two samples loses digits in any float32 evaluation. So the
// bound is set by the float32 reference interpreter, evaluated on the same
// inputs: the result may be at most `multiple` times as far from the float64
// answer as the float32 interpreter is, or `floor` (a few float32 ulps at
// the tensor's scale) where the float32 interpreter happens to be exact, as
// XLA's RunAndCompare bounds a backend by an ErrorSpec.
//
// Errors are norm-wise: max_i |x_i - ref_i| / max_i |ref_i| (absolute when
// the reference is all zero), the measure under which results that sum in a
// different order are comparable (Higham, ch. 3).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_TESTS_ERRORSPEC_H
#define KILN_TESTS_ERRORSPEC_H

#include "ir/Tensor.h"
#include "llvm/Support/FormatVariadic.h"
#include <cmath>
#include <gtest/gtest.h>

namespace kiln::test {

struct ErrorSpec {
  /// How many times the float32 interpreter's error the result may have.
  double multiple = 4;
  /// The least bound: 16 float32 ulps of the tensor's largest magnitude.
  double floor = 16 * 0x1p-24;
};

/// Norm-wise error of x against ref. Where ref is NaN or infinite, x must
/// be the same (else the error is infinite) and the element is left out.
inline double normwiseError(const Tensor &x, const Tensor &ref) {
  if (x.shape() != ref.shape())
    return INFINITY;
  double scale = 0, diff = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    double a = x.at(i), b = ref.at(i);
    if (!std::isfinite(b)) {
      if (!(std::isnan(a) && std::isnan(b)) && a != b)
        return INFINITY;
      continue;
    }
    if (std::isnan(a))
      return INFINITY;
    scale = std::max(scale, std::abs(b));
    diff = std::max(diff, std::abs(a - b));
  }
  return scale > 0 ? diff / scale : diff;
}

/// Whether `got` is within `spec` of the float64 oracle, with the float32
/// interpreter's result `interp32` setting the bound.
inline testing::AssertionResult withinErrorSpec(const Tensor &got,
                                                const Tensor &interp32,
                                                const Tensor &oracle64,
                                                ErrorSpec spec = {}) {
  if (got.dtype() == DType::I32 || oracle64.dtype() == DType::I32) {
    // Integers (indices) have no rounding to allow for.
    if (got.dtype() != oracle64.dtype() || got.shape() != oracle64.shape())
      return testing::AssertionFailure() << "dtype or shape differs";
    for (int64_t i = 0; i < got.numel(); ++i)
      if (got.at(i) != oracle64.at(i))
        return testing::AssertionFailure()
               << "element " << i << " is " << got.at(i) << ", not "
               << oracle64.at(i);
    return testing::AssertionSuccess();
  }
  double err = normwiseError(got, oracle64);
  double reference = normwiseError(interp32, oracle64);
  double bound = std::max(spec.multiple * reference, spec.floor);
  std::string what = llvm::formatv("error {0:e2} against float64; the float32 "
                                   "interpreter's is {1:e2}; bound {2:e2}",
                                   err, reference, bound)
                         .str();
  if (!std::isfinite(reference))
    return testing::AssertionFailure()
           << "the float32 interpreter overflows where float64 does not: "
              "choose inputs that float32 can represent";
  if (err <= bound)
    return testing::AssertionSuccess() << what;
  return testing::AssertionFailure() << what;
}

} // namespace kiln::test

#endif
