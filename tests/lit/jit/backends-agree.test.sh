#!/usr/bin/env bash
# Helper for backends-agree.test: MODELS_DIR TMP_PREFIX
set -euo pipefail
models=$1 t=$2
compare="python3 $(dirname "$0")/../Inputs/compare_safetensors.py"
for m in mlp softmax_regression logistic_regression svm cnn alexnet resnet; do
  n=8
  case $m in cnn) n=4 ;; alexnet|resnet) n=2 ;; esac
  kiln init "$models/$m.kiln" -D N=$n -o "$t.$m.P" --inputs "$t.$m.I" --seed 4 --int-max 10
  kiln grad "$models/$m.kiln" -D N=$n --params "$t.$m.P" --inputs "$t.$m.I" -o "$t.$m.interp" --backend=interp >/dev/null
  kiln grad "$models/$m.kiln" -D N=$n --params "$t.$m.P" --inputs "$t.$m.I" -o "$t.$m.jit" >/dev/null
  echo "== $m"
  $compare "$t.$m.jit" "$t.$m.interp" 1e-4
done
