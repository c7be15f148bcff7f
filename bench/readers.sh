#!/usr/bin/env bash
# Readers beside a run: N trivial jobs (cp, 8 virtual GPUs x 4), run K times alone and K times with R concurrent
# `status` readers polling every 100 ms, alternating (alone, with, alone, with, ...) so that drift in the machine's
# speed falls on both sides. Prints each pair, then the medians, the slowdown of the medians, how many reads were made,
# every read that failed (a lock error would show here) and whether each read was a whole JSON document.
# Usage: bash bench/readers.sh [N] [R] [K] [STATUS ARGS...]
# STATUS ARGS default to `MANIFEST --json`; e.g. `--state STORE --json --fresh` (always the store, never the running
# orchestrator's published copy) or `--state STORE --json --summary` (the words MANIFEST and STORE are replaced by the
# batch's manifest and store).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}; readers=${2:-16}; pairs=${3:-3}; shift $(( $# < 3 ? $# : 3 ))
read_args=("$@"); [ ${#read_args[@]} -gt 0 ] || read_args=(MANIFEST --json)
# AVATAR_BATCH_BIN: a binary to use instead of building one (the portable build on a host without Swift).
if [ -n "${AVATAR_BATCH_BIN:-}" ]; then bin=$AVATAR_BATCH_BIN; else
  swift build -c release --product avatar-batch 2>&1 | tail -1
  bin=$PWD/.build/release/avatar-batch
fi
source bench/cp-batch.sh
now() { date +%s.%N; }

alone_run() {
  local w s e
  w=$(cp_batch "$n" readers)
  s=$(now); "$bin" run "$w/m.yaml" --quiet; e=$(now)
  rm -rf "$w"
  python3 -c "print($e - $s)"
}

# Prints "seconds ok bad whole"; failed reads' messages go to $1.
with_run() {
  local errors=$1 w s e run_pid
  w=$(cp_batch "$n" readers)
  ( "$bin" run "$w/m.yaml" --quiet; echo done > "$w/finished" ) &
  run_pid=$!
  s=$(now)
  # The readers start once the store exists and stop when the run is over.
  until [ -e "$w/out/.avatar-batch/state.sqlite" ] || [ -e "$w/finished" ]; do sleep 0.01; done
  for r in $(seq "$readers"); do
    ( ok=0; bad=0
      while [ ! -e "$w/finished" ]; do
        args=(); for a in "${read_args[@]}"; do case $a in MANIFEST) args+=("$w/m.yaml") ;; STORE) args+=("$w/out/.avatar-batch/state.sqlite") ;; *) args+=("$a") ;; esac; done
        # One read in ten is kept and parsed once the run is over: a torn or half-written document would fail.
        if (( (ok + bad) % 10 == 0 )); then out="$w/kept-$r-$((ok + bad))"; else out="$w/out-$r"; fi
        if "$bin" status "${args[@]}" >"$out" 2>"$w/err-$r"; then ok=$((ok + 1))
        else bad=$((bad + 1)); cat "$w/err-$r" >> "$w/errors"; rm -f "$w/kept-$r-$((ok + bad - 1))"; fi
        sleep 0.1
      done
      echo "$ok $bad" > "$w/reader-$r" ) &
  done
  wait $run_pid
  e=$(now)
  wait
  local whole=0
  if [[ " ${read_args[*]} " == *" --json "* ]]; then
    whole=$(python3 - "$w" "$errors" <<'PY'
import glob, json, sys
whole = 0
for f in glob.glob(sys.argv[1] + "/kept-*"):
    try:
        json.load(open(f)); whole += 1
    except ValueError:
        open(sys.argv[2], "a").write("a kept read is not a whole JSON document\n")
print(whole)
PY
)
  fi
  [ -s "$w/errors" ] && cat "$w/errors" >> "$errors"
  local reads; reads=$(cat "$w"/reader-* | awk '{ok += $1; bad += $2} END {print ok, bad}')
  rm -rf "$w"
  echo "$(python3 -c "print($e - $s)") $reads $whole"
}

errors=$(mktemp)
results=()
for p in $(seq "$pairs"); do
  a=$(alone_run)
  wr=$(with_run "$errors")
  results+=("$a $wr")
  read -r ws ok bad whole <<< "$wr"
  python3 -c "import sys; a, w = float(sys.argv[1]), float(sys.argv[2]); print(f'pair $p: alone {a:.2f} s, with $readers readers {w:.2f} s ({(w / a - 1) * 100:+.1f}%); $ok reads, $bad failed, $whole kept and parsed whole')" "$a" "$ws"
done
printf '%s\n' "${results[@]}" | python3 -c '
import sys, statistics
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
alone = statistics.median(r[0] for r in rows); with_ = statistics.median(r[1] for r in rows)
ok = sum(int(r[2]) for r in rows); bad = sum(int(r[3]) for r in rows)
print(f"'"$n"' jobs, '"$readers"' readers, {len(rows)} pairs: median alone {alone:.2f} s, median with readers {with_:.2f} s ({(with_ / alone - 1) * 100:+.1f}%); {ok} reads, {bad} failed")'
if [ -s "$errors" ]; then echo "failed reads:"; sort "$errors" | uniq -c | head; fi
rm -f "$errors"
