#!/usr/bin/env bash
# Kills `kiln train` with SIGKILL while it writes a checkpoint, and checks
# that the previous checkpoint is still whole: `kiln eval` reads it.
#   kill-during-write.sh MODEL.kiln CHECKPOINT
# The run checkpoints every epoch of two steps, so it is nearly always
# writing; the script waits until a temporary file of the checkpoint
# exists, kills, and retries until a kill has left one behind (a kill
# that hit mid-write), at most 10 times.
set -u
model=$1 ckpt=$2
dir=$(dirname "$ckpt") base=$(basename "$ckpt")
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  rm -f "$dir/$base".tmp-*
  kiln train "$model" --epochs 1000000 --checkpoint "$ckpt" > /dev/null 2>&1 &
  pid=$!
  # Poll for the temporary file, then kill at once.
  for _ in $(seq 200000); do
    if compgen -G "$dir/$base.tmp-*" > /dev/null; then
      kill -9 $pid
      break
    fi
    kill -0 $pid 2> /dev/null || { echo "kiln train exited early"; exit 1; }
  done
  kill -9 $pid 2> /dev/null
  wait $pid 2> /dev/null
  # Whatever the kill interrupted, the checkpoint reads.
  kiln eval "$model" --checkpoint "$ckpt" > /dev/null || {
    echo "the checkpoint is broken after kill $attempt"; exit 1; }
  if compgen -G "$dir/$base.tmp-*" > /dev/null; then
    echo "killed during a write on attempt $attempt; the checkpoint is intact"
    exit 0
  fi
done
echo "no kill landed during a write in 10 attempts"
exit 1
