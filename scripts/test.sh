#!/usr/bin/env bash
# Builds Kiln and runs every test: GoogleTest unit tests and lit/FileCheck
# tests, through ctest. (scripts/setup.sh installs the dependencies.)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER=clang++-19
fi
ninja -C build
ctest --test-dir build --output-on-failure -j "$(nproc)"
