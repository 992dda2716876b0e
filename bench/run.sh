#!/usr/bin/env bash
# Kiln against LibTorch, side by side, in one run on this machine; writes
# docs/benchmarks.md (bench/report.py).
#
#   bench/run.sh [--rounds R] [--min-time S] [--out DIR] [--page FILE]
#                [--blas-coretype NAME]
#
# Installs the peer first if it is missing: Debian's libtorch-dev (PyTorch
# 1.13's C++ API) and OpenBLAS built for OpenMP, which libblas.so.3 is set
# to, as a careful user would (the reference BLAS Debian falls back to is
# some 25 times slower). Kiln never links either; only kiln-bench does,
# built here with KILN_BENCH_TORCH=ON in build/.
#
# Each round runs every group of benchmarks (GEMM, each model's training
# step, bandwidth, compile time, vector width, the thread pool's spinning)
# as its own processes, Kiln's and LibTorch's
# in turn, with the order swapped every round, so that drifts in the
# machine's speed fall on both sides. Both sides run with the same
# environment: glibc told not to trim the heap or map large blocks between
# steps (the trimming costs LibTorch up to 30%, at random), and the threads
# each benchmark asks for (LibTorch's intra-op threads and OpenBLAS's are
# both set; LibTorch does not pass its count to OpenBLAS).
#
# The JSON of every run stays in DIR (default build/bench; the run first
# deletes the JSON files there); the page's tables are medians over the
# rounds with their ranges.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=5
minTime=1
out=build/bench
page=docs/benchmarks.md
blasCoretype=""
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --min-time) minTime=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --page) page=$2; shift 2 ;;
    --blas-coretype) blasCoretype=$2; shift 2 ;;
    *) echo "usage: bench/run.sh [--rounds R] [--min-time S] [--out DIR] [--page FILE] [--blas-coretype NAME]" >&2
       exit 2 ;;
  esac
done

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
missing=()
for p in libtorch-dev libopenblas0-openmp; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
fi
blas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
if [ "$(readlink -f /etc/alternatives/libblas.so.3-x86_64-linux-gnu)" != "$blas" ]; then
  $sudo update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas"
fi

# Kiln's own dependencies and build (a no-op when they are there), then
# the same build with LibTorch's side on.
bash scripts/setup.sh --no-run
cmake -S . -B build -DKILN_BENCH_TORCH=ON >/dev/null
cmake --build build --target kiln-bench

export GLIBC_TUNABLES=glibc.malloc.trim_threshold=4294967296:glibc.malloc.mmap_threshold=33554432
# OpenBLAS picks its kernels and blocking for this CPU unless the
# environment names others: an inherited OPENBLAS_CORETYPE (this
# workplace's machines set Haswell, AVX2 only) halves its GEMM speed on an
# AVX-512 CPU. The peer gets OpenBLAS's own choice, which the page reports;
# --blas-coretype NAME forces one instead.
for v in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
  if [ -n "${!v:-}" ]; then
    echo "bench: ignoring $v=${!v} from the environment" >&2
    unset "$v"
  fi
done
if [ -n "$blasCoretype" ]; then
  export OPENBLAS_CORETYPE=$blasCoretype
fi
mkdir -p "$out"
rm -f "$out"/*.json

# Each group, separated by ';': its name, Kiln's filter, LibTorch's filter
# (empty: Kiln only) and its minimum time per benchmark in units of
# --min-time.
groups=(
  "peak;^BM_FmaPeak$;;1"
  "gemm;^BM_(Kiln|Eigen)Gemm/;^(torchMm|openblasSgemm)/;0.5"
  "mlp;^sessionMlp/;^torchMlp/;1"
  "cnn;^sessionCnn/;^torchCnn/;2"
  "resnet;^sessionResnet/;^torchResnet/;3"
  "bandwidth;^(streamTriad|kilnElementwise)/;;0.5"
  "compile;^compileStep/(mlp|cnn|resnet|alexnet|logistic_regression|softmax_regression|svm)/;;0.1"
  "width;^trainingStep/(mlp|cnn)_jit/vwidth:(256|512)/;;1"
  "spin;^session(Mlp|Cnn)/threads:([2-9]|[1-9][0-9]+)/;;1"
)

bench() {
  local file=$1 filter=$2 time=$3
  build/bin/kiln-bench --benchmark_filter="$filter" --benchmark_min_time="$time" \
    --benchmark_out="$file" --benchmark_out_format=json >/dev/null
}

for r in $(seq 1 "$rounds"); do
  for g in "${groups[@]}"; do
    IFS=';' read -r name kiln torch scale <<<"$g"
    time=$(awk "BEGIN { print $minTime * $scale }")
    echo "bench: round $r/$rounds: $name"
    if [ "$name" = spin ]; then
      # The thread pool without and with spinning (docs/codegen.md), in
      # turn: the files' sides are spin0 and spin200.
      for us in $( [ $((r % 2)) = 1 ] && echo 0 200 || echo 200 0 ); do
        KILN_THREAD_SPIN_US=$us bench "$out/$name.spin$us.$r.json" "$kiln" "$time"
      done
    elif [ -z "$torch" ]; then
      bench "$out/$name.kiln.$r.json" "$kiln" "$time"
    elif [ $((r % 2)) = 1 ]; then
      bench "$out/$name.kiln.$r.json" "$kiln" "$time"
      bench "$out/$name.torch.$r.json" "$torch" "$time"
    else
      bench "$out/$name.torch.$r.json" "$torch" "$time"
      bench "$out/$name.kiln.$r.json" "$kiln" "$time"
    fi
  done
done

python3 bench/report.py "$out" "$page" --rounds "$rounds" --min-time "$minTime" \
  --tunables "$GLIBC_TUNABLES"
echo "bench: wrote $page"
