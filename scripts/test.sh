#!/usr/bin/env bash
# Builds Kiln and runs every test: GoogleTest unit tests and lit/FileCheck
# tests, through ctest, first in the Release build (build/), then in the
# checking build (build-sanitize/: AddressSanitizer, UndefinedBehaviorSanitizer
# and assertions). scripts/setup.sh installs the dependencies.
#
#   scripts/test.sh              both suites
#   scripts/test.sh --release    the Release suite only
#   scripts/test.sh --sanitize   the sanitizer suite only
#
# Each suite prints its own time. The slow model-accuracy suite is not part
# of this: it arrives with training, as its own ctest label.
set -euo pipefail
cd "$(dirname "$0")/.."

suites=(release sanitize)
case "${1:-}" in
  "") ;;
  --release) suites=(release) ;;
  --sanitize) suites=(sanitize) ;;
  *) echo "usage: scripts/test.sh [--release | --sanitize]" >&2; exit 2 ;;
esac

run_suite() {
  local name=$1 dir=$2; shift 2
  local start=$SECONDS
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_COMPILER=clang++-19 "$@"
  fi
  ninja -C "$dir"
  local built=$SECONDS
  ctest --test-dir "$dir" --output-on-failure -j "$(nproc)"
  echo "test.sh: $name suite: build $((built - start)) s, tests $((SECONDS - built)) s"
}

for s in "${suites[@]}"; do
  case $s in
    release) run_suite Release build ;;
    # Every report is fatal (-fno-sanitize-recover), leaks included.
    sanitize) ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
              UBSAN_OPTIONS=print_stacktrace=1 \
              run_suite sanitizer build-sanitize -DKILN_SANITIZE=ON ;;
  esac
done
