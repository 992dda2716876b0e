#!/usr/bin/env bash
# The model-accuracy suite: trains the models on the real Fashion-MNIST and
# checks the accuracy each must reach. Slow (about 15 minutes on 2 cores), so
# it is not part of scripts/test.sh's default run:
#   bash scripts/test.sh --accuracy     (or: bash tests/accuracy/run.sh [build])
# Prints one line per run and the accuracy after each epoch; exits 1 if any
# run misses its bar.
set -uo pipefail
cd "$(dirname "$0")/../.."
kiln=${1:-build}/bin/kiln
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

# run NAME MIN MODEL.kiln [FLAGS...]: the last epoch's test accuracy >= MIN.
run() {
  local name=$1 min=$2 model=$3
  shift 3
  local start=$SECONDS
  if ! "$kiln" train "$model" "$@" > "$work/$name.out" 2>&1; then
    echo "FAIL $name: kiln train failed:"; tail -5 "$work/$name.out"
    failed=1; return
  fi
  local acc
  acc=$(grep -o 'test accuracy [0-9.]*' "$work/$name.out" | tail -1 | cut -d' ' -f3)
  local epochs
  epochs=$(grep -o 'test accuracy [0-9.]*' "$work/$name.out" | cut -d' ' -f3 | paste -sd' ')
  if awk -v a="$acc" -v m="$min" 'BEGIN { exit !(a >= m) }'; then
    echo "ok   $name: $acc >= $min (per epoch: $epochs; $((SECONDS - start)) s)"
  else
    echo "FAIL $name: $acc < $min (per epoch: $epochs)"; failed=1
  fi
}

# The MLP of the README: 5 epochs.
run mlp 0.875 models/mlp.kiln --epochs 5 --seed 1

# Each optimizer trains the MLP to 0.80 in one epoch.
optimizer() {
  local name=$1 opt=$2
  # The same MLP with a constant learning rate.
  sed "s|optimizer = adam(lr = 0.002)|optimizer = $opt|; /schedule/d" models/mlp.kiln > "$work/$name.kiln"
  run "mlp-$name" 0.80 "$work/$name.kiln" --epochs 1 --seed 1
}
optimizer sgd "sgd(lr = 0.1)"
optimizer momentum "sgd(lr = 0.05, momentum = 0.9)"
optimizer nesterov "sgd(lr = 0.05, momentum = 0.9, nesterov = true)"
optimizer adagrad "adagrad(lr = 0.05)"
optimizer adadelta "adadelta(lr = 1.0)"
optimizer rmsprop "rmsprop(lr = 0.001)"
optimizer adam "adam(lr = 0.001)"
optimizer adamw "adamw(lr = 0.001, weight_decay = 0.01)"

# The linear models: 5 epochs.
run softmax_regression 0.83 models/softmax_regression.kiln --seed 1
run svm 0.80 models/svm.kiln --seed 1
# Logistic regression predicts "footwear or not"; its output is not class
# scores, so it reports no accuracy: it must train (the loss falls).
if "$kiln" train models/logistic_regression.kiln --epochs 2 --seed 1 --metrics "$work/lr.csv" > "$work/lr.out" 2>&1 &&
   awk -F, 'NR == 2 { a = $2 } NR == 3 { b = $2 } END { exit !(b < a && b < 0.2) }' "$work/lr.csv"; then
  echo "ok   logistic_regression: train loss $(awk -F, 'NR == 3 { print $2 }' "$work/lr.csv") after 2 epochs"
else
  echo "FAIL logistic_regression:"; cat "$work/lr.out"; failed=1
fi

# The convolutional networks: one epoch each.
run cnn 0.85 models/cnn.kiln --epochs 1 --seed 1
run alexnet 0.80 models/alexnet.kiln --epochs 1 --seed 1
run resnet 0.80 models/resnet.kiln --epochs 1 --seed 1

exit $failed
