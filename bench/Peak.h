//===- Peak.h - This core's measured fp32 FMA peak -------------*- C++ -*-===//
#ifndef KILN_BENCH_PEAK_H
#define KILN_BENCH_PEAK_H

namespace kiln::bench {

/// One core's fp32 peak in GFLOP/s: independent FMA chains on the CPU's
/// widest vectors (GemmBench.cpp, compiled for this CPU), measured once.
double measuredPeak();

} // namespace kiln::bench

#endif
