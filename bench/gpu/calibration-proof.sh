#!/usr/bin/env bash
# Calibration on the GPU host (docs/calibration.md, docs/benchmarks.md), from the repository root with .carry/la
# carried (the portable binary and a static ffmpeg):
#   bash bench/gpu/calibration-proof.sh [N]        (CALIBRATE_ONLY=1: steps 1 and 2, and the plan after, without the run;
#                                                   SECOND=1: step 5 too)
# 1. plan the N-clip proof manifest (bench/gpu/make-manifest.py) from the profile alone;
# 2. avatar-batch calibrate synthetic-dit --quick on GPU 0 (a fresh history in $AVATAR_BATCH_HOME);
# 3. plan it again (from the calibration), then run it (one process per clip, packed);
# 4. keep the plans, the calibration's output, the run's status, its attempts' logs and the history file for the replay benchmark
#    (bench: avatar-batch-bench replay). Results: $OUT (the device tool's folder; /tmp/cal-out elsewhere).
# 5. (SECOND=1) the same clips as a second batch (a new folder, so a new store) planned from the calibration and the
#    first batch's history, then run: the second batch of the week (second-*).
# 6. (WARM=1) the same clips once more on warm workers (--workers auto: one load per worker, then requests), planned
#    from everything before: warm-*.
set -u
N=${1:-32}
OUT=${OUT:-/tmp/cal-out}; mkdir -p "$OUT"
repo=$PWD; carry=$repo/.carry/la; W=/tmp/calproof
t0=$(date +%s); stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
# keep_history DEST: the history as SQLite's backup sees it (the file and its write-ahead log), into $OUT/DEST.
keep_history() { python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))" "$AVATAR_BATCH_HOME/history.sqlite" "$OUT/$1"; }
mkdir -p /tmp/ab /tmp/ffbin
tar -xJf "$carry/avatar-batch.tar.xz" -C /tmp/ab && tar -xJf "$carry/ffbin.tar.xz" -C /tmp/ffbin && chmod +x /tmp/ffbin/* || exit 1
export PATH=/tmp/ab/bin:/tmp/ffbin:$PATH PYTHONUNBUFFERED=1 AVATAR_BATCH_RENDERERS=$repo/renderers AVATAR_BATCH_HOME=/tmp/abhome
rm -rf "$W" "$AVATAR_BATCH_HOME"
nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv,noheader | tee "$OUT/gpus.csv"
python3 bench/gpu/make-manifest.py "$W" "$N" > /dev/null && cp "$W/gpu-proof.yaml" "$OUT/"
avatar-batch plan "$W/gpu-proof.yaml" --workers off > "$OUT/plan-before.txt" 2>&1
stamp "calibrate"
a=$(date +%s.%N)
avatar-batch calibrate synthetic-dit --quick --gpu 0 > "$OUT/calibrate.txt" 2> "$OUT/calibrate.log"; rc=$?
b=$(date +%s.%N)
python3 -c "print('calibrate: %.1f s wall, exit $rc' % ($b - $a))" | tee "$OUT/summary.txt"
cat "$OUT/calibrate.txt"
avatar-batch plan "$W/gpu-proof.yaml" --workers off --explain > "$OUT/plan-after.txt" 2>&1
grep -E "^predictions|^makespan" "$OUT/plan-before.txt" "$OUT/plan-after.txt" | tee -a "$OUT/summary.txt"
if [ "${CALIBRATE_ONLY:-}" = 1 ]; then keep_history history.sqlite; stamp "done"; exit 0; fi
# run_batch MANIFEST LOG STATUS LABEL: runs it, keeps its log as $OUT/LOG and its status as $OUT/STATUS, and adds
# its wall time, counts and OOM attempts to the summary, each line starting with LABEL.
run_batch() {
  local manifest=$1 log="$OUT/$2" status="$OUT/$3" label=$4 workers=${5:-off} a b rc
  stamp "${label}run"
  a=$(date +%s.%N)
  avatar-batch run "$manifest" --workers "$workers" 2> "$log"; rc=$?
  b=$(date +%s.%N)
  python3 -c "print('${label}run: %.1f s wall, exit $rc' % ($b - $a))" | tee -a "$OUT/summary.txt"
  avatar-batch status "$manifest" --json > "$status"
  python3 -c "import json; d=json.load(open('$status')); print('${label}counts', d['counts']); print('${label}OOM attempts', sum(a['classification']=='oom' for j in d['jobs'] for a in j['attempts']))" | tee -a "$OUT/summary.txt"
  # The attempts' logs: synthetic-dit prints its report (startup_s, load_s, render_s) at the end of each.
  tar -czf "$OUT/${label// /}${label:+-}logs.tgz" -C "$(dirname "$manifest")/videos/.avatar-batch" logs
}
run_batch "$W/gpu-proof.yaml" run.log run-status.json ""
keep_history history.sqlite
if [ "${SECOND:-}" = 1 ]; then
  W2=/tmp/calproof2; rm -rf "$W2"
  python3 bench/gpu/make-manifest.py "$W2" "$N" > /dev/null
  avatar-batch plan "$W2/gpu-proof.yaml" --workers off --explain > "$OUT/second-plan.txt" 2>&1
  grep -E "^predictions|^makespan" "$OUT/second-plan.txt" | sed 's/^/second batch plan: /' | tee -a "$OUT/summary.txt"
  run_batch "$W2/gpu-proof.yaml" second-run.log second-status.json "second "
  keep_history history-after-second.sqlite
fi
if [ "${WARM:-}" = 1 ]; then
  W3=/tmp/calproof3; rm -rf "$W3"
  python3 bench/gpu/make-manifest.py "$W3" "$N" > /dev/null
  avatar-batch plan "$W3/gpu-proof.yaml" --explain > "$OUT/warm-plan.txt" 2>&1
  grep -E "^predictions|^makespan|^workers" "$OUT/warm-plan.txt" | sed 's/^/warm batch plan: /' | tee -a "$OUT/summary.txt"
  run_batch "$W3/gpu-proof.yaml" warm-run.log warm-status.json "warm " auto
  keep_history history-after-warm.sqlite
fi
stamp "done"
