#!/usr/bin/env bash
# Runs the libFuzzer targets of kiln-fuzz (tests/fuzz/Fuzz.cpp):
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS] [TARGET...]
#
# BUILD_DIR is a build with KILN_FUZZ (build-sanitize). First every input in
# tests/fuzz/regressions/TARGET/ runs once: each is a crash the fuzzers
# found, fixed since. Then each TARGET (default: all four) fuzzes for
# SECONDS (default 30), as many at a time as there are cores. Each starts
# from the seeds tests/fuzz/seeds.py writes and from BUILD_DIR/fuzz/TARGET/
# corpus, which keeps what earlier runs found. A crash leaves its input in
# BUILD_DIR/fuzz/TARGET/ and fails the run; the log is
# BUILD_DIR/fuzz/TARGET.log, whose last lines give the executions done.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: tests/fuzz/run.sh BUILD_DIR [SECONDS] [TARGET...]}
seconds=${2:-30}
shift $(($# > 2 ? 2 : $#))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frontend ir safetensors data)
fuzz=$build/bin/kiln-fuzz
out=$build/fuzz

# Leaks are reported at exit of a whole run, not per input; the system
# libraries' are suppressed as in the sanitizer suite.
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"

rm -rf "$out/seeds"
python3 tests/fuzz/seeds.py . "$out/seeds"

failed=0
for t in "${targets[@]}"; do
  if [ -d "tests/fuzz/regressions/$t" ]; then
    if ! "$fuzz" --target="$t" tests/fuzz/regressions/"$t"/* \
        > "$out/$t.regressions.log" 2>&1; then
      echo "fuzz: a regression input of $t fails again:" >&2
      tail -30 "$out/$t.regressions.log" >&2
      failed=1
    fi
  fi
done

run() {
  local t=$1 status=0
  mkdir -p "$out/$t/corpus"
  "$fuzz" --target="$t" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=4096 -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$out/$t/" "$out/$t/corpus" "$out/seeds/$t" \
    > "$out/$t.log" 2>&1 || status=$?
  echo "$status" > "$out/$t.status"
}

jobs=$(nproc)
pids=()
for t in "${targets[@]}"; do
  run "$t" & pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || true
    pids=("${pids[@]:1}")
  fi
done
wait || true

for t in "${targets[@]}"; do
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -1)
  # A target that was killed (by the OOM killer, say) prints no stats.
  if [ "$(cat "$out/$t.status" 2>/dev/null)" != 0 ] || [ -z "$runs" ] ||
     grep -qE '^==[0-9]+==ERROR|^SUMMARY: |kiln-fuzz: |Test unit written' "$out/$t.log"; then
    echo "fuzz: $t FAILED after ${runs:-?} runs; its input is in $out/$t/:" >&2
    grep -E 'ERROR|SUMMARY|kiln-fuzz: |Test unit written|#0 |#1 |#2 |#3 ' "$out/$t.log" | head -30 >&2
    tail -5 "$out/$t.log" >&2
    failed=1
  else
    echo "fuzz: $t: ${runs:-?} runs in ${seconds} s, no crash"
  fi
done
exit $failed
