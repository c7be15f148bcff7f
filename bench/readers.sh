#!/usr/bin/env bash
# Readers beside a run: N trivial jobs (cp, 8 virtual GPUs x 4) run once alone and once with R concurrent
# `status --json` readers polling every 100 ms. Reports both wall times, the slowdown, how many reads were made and
# every read that failed (a lock error would show here). Usage: bash bench/readers.sh [N] [R] [STATUS ARGS...]
# STATUS ARGS default to `MANIFEST --json`; e.g. `--state STORE --json --summary` (the words MANIFEST and STORE are
# replaced by the batch's manifest and store).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}; readers=${2:-16}; shift $(( $# < 2 ? $# : 2 ))
read_args=("$@"); [ ${#read_args[@]} -gt 0 ] || read_args=(MANIFEST --json)
# AVATAR_BATCH_BIN: a binary to use instead of building one (the portable build on a host without Swift).
if [ -n "${AVATAR_BATCH_BIN:-}" ]; then bin=$AVATAR_BATCH_BIN; else
  swift build -c release --product avatar-batch 2>&1 | tail -1
  bin=$PWD/.build/release/avatar-batch
fi
source bench/cp-batch.sh
setup() { cp_batch "$n" readers; }
timed_run() { local s e; s=$(date +%s.%N); "$bin" run "$1/m.yaml" --quiet; e=$(date +%s.%N); python3 -c "print($e - $s)"; }

alone_dir=$(setup)
alone=$(timed_run "$alone_dir")
rm -rf "$alone_dir"

w=$(setup)
# The readers start once the store exists and stop when the run is over.
( "$bin" run "$w/m.yaml" --quiet; echo done > "$w/finished" ) &
run_pid=$!
s=$(date +%s.%N)
until [ -e "$w/out/.avatar-batch/state.sqlite" ] || [ -e "$w/finished" ]; do sleep 0.01; done
for r in $(seq "$readers"); do
  ( ok=0; bad=0
    while [ ! -e "$w/finished" ]; do
      args=(); for a in "${read_args[@]}"; do case $a in MANIFEST) args+=("$w/m.yaml") ;; STORE) args+=("$w/out/.avatar-batch/state.sqlite") ;; *) args+=("$a") ;; esac; done
      if "$bin" status "${args[@]}" >/dev/null 2>"$w/err-$r"; then ok=$((ok + 1)); else bad=$((bad + 1)); cat "$w/err-$r" >> "$w/errors"; fi
      sleep 0.1
    done
    echo "$ok $bad" > "$w/reader-$r" ) &
done
wait $run_pid
e=$(date +%s.%N)
wait
with=$(python3 -c "print($e - $s)")
reads=$(cat "$w"/reader-* | awk '{ok += $1; bad += $2} END {print ok, bad}')
python3 - "$n" "$readers" "$alone" "$with" $reads <<'PY'
import sys
n, r, alone, with_, ok, bad = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
print(f"{n} jobs alone: {alone:.2f} s; with {r} readers: {with_:.2f} s ({(with_ / alone - 1) * 100:+.1f}%); {ok} reads, {bad} failed")
PY
[ -s "$w/errors" ] && { echo "failed reads:"; sort "$w/errors" | uniq -c | head; }
rm -rf "$w"
