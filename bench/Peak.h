//===- Peak.h - This core's measured fp32 FMA peak -------------*- C++ -*-===//
#ifndef KILN_BENCH_PEAK_H
#define KILN_BENCH_PEAK_H

namespace kiln::bench {

/// The fp32 peak in GFLOP/s of `threads` threads running at once:
/// independent FMA chains on the CPU's widest vectors (GemmBench.cpp,
/// compiled for this CPU), measured once per thread count. Two threads on
/// the two hyperthreads of one core share its FMA units, so the all-core
/// peak can be less than the one-core peak times the cores.
double measuredPeak(unsigned threads = 1);

} // namespace kiln::bench

#endif
