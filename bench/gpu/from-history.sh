#!/usr/bin/env bash
# One batch of the proof manifest planned from a recorded history (docs/benchmarks.md), on the GPU host from the
# repository root with .carry/la carried (the portable binary and a static ffmpeg):
#   bash bench/gpu/from-history.sh HISTORY [N]     (STEPS=S: the clips at S sample steps, default 4)
# Copies HISTORY (a history.sqlite kept by calibration-proof.sh) into a fresh $AVATAR_BATCH_HOME, plans the N-clip
# proof manifest from it (cold processes, --workers off), runs it, and keeps the plan, the run's log, status and
# attempts' logs, and the history after it in $OUT (the device tool's folder; /tmp/hist-out elsewhere). The same
# history on two builds shows what a scheduling change does with the same figures.
set -u
HISTORY=$1
N=${2:-32}
OUT=${OUT:-/tmp/hist-out}; mkdir -p "$OUT"
W=/tmp/fromhist
AVATAR_BATCH_HOME=/tmp/abhome-fromhist
. bench/gpu/lib.sh
rm -rf "$W" "$AVATAR_BATCH_HOME"; mkdir -p "$AVATAR_BATCH_HOME"
cp "$HISTORY" "$AVATAR_BATCH_HOME/history.sqlite"
nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv,noheader | tee "$OUT/gpus.csv"
python3 bench/gpu/make-manifest.py "$W" "$N" --steps "${STEPS:-4}" > /dev/null && cp "$W/gpu-proof.yaml" "$OUT/"
avatar-batch plan "$W/gpu-proof.yaml" --workers off --explain > "$OUT/plan.txt" 2>&1
grep -E "^predictions|^makespan" "$OUT/plan.txt" | tee "$OUT/summary.txt"
run_batch "$W/gpu-proof.yaml" run.log status.json ""
keep_history history-after.sqlite
