#!/usr/bin/env bash
# Builds Kiln and runs every test: GoogleTest unit tests and lit/FileCheck
# tests, through ctest, first in the Release build (build/), then in the
# checking build (build-sanitize/: AddressSanitizer, UndefinedBehaviorSanitizer
# and assertions), then the fuzz targets of that build for 30 s each
# (tests/fuzz/run.sh). scripts/setup.sh installs the dependencies.
#
#   scripts/test.sh              all three suites
#   scripts/test.sh --release    the Release suite only
#   scripts/test.sh --sanitize   the sanitizer suite only
#   scripts/test.sh --fuzz [S]   the fuzz suite only, S seconds a target
#   scripts/test.sh --accuracy   the slow model-accuracy suite only (about
#                                15 minutes: trains the models on the real
#                                Fashion-MNIST; not part of the default run)
#
# Each suite prints its own time.
set -euo pipefail
cd "$(dirname "$0")/.."

suites=(release sanitize fuzz)
fuzzSeconds=30
case "${1:-}" in
  "") ;;
  --release) suites=(release) ;;
  --sanitize) suites=(sanitize) ;;
  --fuzz) suites=(fuzz); fuzzSeconds=${2:-30} ;;
  --accuracy) suites=(accuracy) ;;
  *) echo "usage: scripts/test.sh [--release | --sanitize | --fuzz [SECONDS] | --accuracy]" >&2
     exit 2 ;;
esac

build() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_COMPILER=clang++-19 "$@"
  fi
  ninja -C "$dir"
}

release() {
  local start=$SECONDS
  build build
  local built=$SECONDS
  ctest --test-dir build --output-on-failure -j "$(nproc)"
  echo "test.sh: Release suite: build $((built - start)) s, tests $((SECONDS - built)) s"
}

# The same unit and lit tests. The unit tests run as one process per core
# (gtest shards) rather than one per test: a sanitized process takes half a
# second to start, which one per test would pay 750 times.
sanitize() {
  local start=$SECONDS
  build build-sanitize -DKILN_SANITIZE=ON
  local built=$SECONDS
  # Every report is fatal (-fno-sanitize-recover), leaks included, but for
  # the system libraries listed in tests/lsan.supp.
  export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
  local n pids=() failed=0
  n=$(nproc)
  for ((i = 0; i < n; i++)); do
    GTEST_TOTAL_SHARDS=$n GTEST_SHARD_INDEX=$i \
      build-sanitize/bin/kiln-unittests --gtest_brief=1 \
      > "build-sanitize/unittests.$i.log" 2>&1 &
    pids+=($!)
  done
  for ((i = 0; i < n; i++)); do
    if ! wait "${pids[$i]}"; then failed=1; fi
    cat "build-sanitize/unittests.$i.log"
  done
  local unit=$SECONDS
  python3 /usr/lib/llvm-19/build/utils/lit/lit.py -sv build-sanitize/tests/lit \
    || failed=1
  echo "test.sh: sanitizer suite: build $((built - start)) s, unit tests" \
       "$((unit - built)) s, lit tests $((SECONDS - unit)) s"
  return $failed
}

# Each libFuzzer target of kiln-fuzz, two at a time on two cores, after
# replaying the inputs of crashes fixed before (tests/fuzz/regressions).
fuzz() {
  local start=$SECONDS
  build build-sanitize -DKILN_SANITIZE=ON
  bash tests/fuzz/run.sh build-sanitize "$fuzzSeconds"
  echo "test.sh: fuzz suite: $((SECONDS - start)) s"
}

accuracy() {
  local start=$SECONDS
  build build
  bash tests/accuracy/run.sh build
  echo "test.sh: accuracy suite: $((SECONDS - start)) s"
}

for s in "${suites[@]}"; do
  $s
done
