//===- PerfMap.h - Naming JIT-compiled code for perf ------*- C++ -*-===//
//
// Linux perf cannot name code that has no file behind it. Its convention for
// JITs is a text file, /tmp/perf-PID.map, with one "START SIZE NAME" line per
// function; `perf report` reads it when it meets an address in anonymous
// memory. With KILN_PERF_MAP=1 in the environment, the JIT appends a line for
// every function it links (kernels, epilogues, GEMM micro-kernels, entry
// points), so a profile of a training step names each kernel.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_PERFMAP_H
#define KILN_CODEGEN_PERFMAP_H

#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include <string>

namespace kiln {

/// True if the environment asks for a perf map (KILN_PERF_MAP set and not
/// "0").
bool perfMapRequested();

/// The process's map, /tmp/perf-PID.map.
std::string perfMapPath();

/// Makes `jit` append each function it links to the process's map, which
/// every JIT in the process shares. Fails if the JIT does not link with
/// JITLink or the file cannot be opened.
llvm::Error addPerfMap(llvm::orc::LLJIT &jit);

} // namespace kiln

#endif
