#!/usr/bin/env bash
# One batch of the proof manifest planned from a recorded history (docs/benchmarks.md), on the GPU host from the
# repository root with .carry/la carried (the portable binary and a static ffmpeg):
#   bash bench/gpu/from-history.sh HISTORY [N]
# Copies HISTORY (a history.sqlite kept by calibration-proof.sh) into a fresh $AVATAR_BATCH_HOME, plans the N-clip
# proof manifest from it (cold processes, --workers off), runs it, and keeps the plan, the run's log, status and
# attempts' logs, and the history after it in $OUT (the device tool's folder; /tmp/hist-out elsewhere). The same
# history on two builds shows what a scheduling change does with the same figures.
set -u
HISTORY=$1
N=${2:-32}
OUT=${OUT:-/tmp/hist-out}; mkdir -p "$OUT"
repo=$PWD; carry=$repo/.carry/la; W=/tmp/fromhist
mkdir -p /tmp/ab /tmp/ffbin
tar -xJf "$carry/avatar-batch.tar.xz" -C /tmp/ab && tar -xJf "$carry/ffbin.tar.xz" -C /tmp/ffbin && chmod +x /tmp/ffbin/* || exit 1
export PATH=/tmp/ab/bin:/tmp/ffbin:$PATH PYTHONUNBUFFERED=1 AVATAR_BATCH_RENDERERS=$repo/renderers AVATAR_BATCH_HOME=/tmp/abhome-fromhist
rm -rf "$W" "$AVATAR_BATCH_HOME"; mkdir -p "$AVATAR_BATCH_HOME"
cp "$HISTORY" "$AVATAR_BATCH_HOME/history.sqlite"
nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv,noheader | tee "$OUT/gpus.csv"
python3 bench/gpu/make-manifest.py "$W" "$N" > /dev/null && cp "$W/gpu-proof.yaml" "$OUT/"
avatar-batch plan "$W/gpu-proof.yaml" --workers off --explain > "$OUT/plan.txt" 2>&1
grep -E "^predictions|^makespan" "$OUT/plan.txt" | tee "$OUT/summary.txt"
a=$(date +%s.%N)
avatar-batch run "$W/gpu-proof.yaml" --workers off 2> "$OUT/run.log"; rc=$?
b=$(date +%s.%N)
python3 -c "print('run: %.1f s wall, exit $rc' % ($b - $a))" | tee -a "$OUT/summary.txt"
avatar-batch status "$W/gpu-proof.yaml" --json > "$OUT/status.json"
python3 -c "import json; d=json.load(open('$OUT/status.json')); print('counts', d['counts']); print('OOM attempts', sum(a['classification']=='oom' for j in d['jobs'] for a in j['attempts']))" | tee -a "$OUT/summary.txt"
tar -czf "$OUT/logs.tgz" -C "$W/videos/.avatar-batch" logs
python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))" "$AVATAR_BATCH_HOME/history.sqlite" "$OUT/history-after.sqlite"
