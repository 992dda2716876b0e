#!/usr/bin/env bash
# Installs Kiln's build dependencies (Debian 12), builds with Ninja and
# ccache, and runs the main job. Usage: scripts/setup.sh [--no-run]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(llvm-19-dev llvm-19-tools clang-19 libeigen3-dev nlohmann-json3-dev
          zlib1g-dev libgtest-dev libbenchmark-dev ninja-build ccache cmake
          python3 dataset-fashion-mnist libcairo2-dev pkg-config)

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER=clang++-19
fi
ninja -C build

if [ "${1:-}" != "--no-run" ]; then
  # The main job: train the default model (the MLP, on Fashion-MNIST), with
  # its metrics, plot and checkpoint in out/.
  mkdir -p out
  build/bin/kiln train models/mlp.kiln --metrics out/mlp.csv \
    --plot out/mlp.png --checkpoint out/mlp.safetensors
fi
