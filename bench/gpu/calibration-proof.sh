#!/usr/bin/env bash
# Calibration on the GPU host (docs/calibration.md, docs/benchmarks.md), from the repository root with .carry/la
# carried (the portable binary and a static ffmpeg):
#   bash bench/gpu/calibration-proof.sh [N]        (CALIBRATE_ONLY=1: steps 1 and 2, and the plan after, without the run;
#                                                   SECOND=1: step 5 too; RUN_ARGS: options for every plan and run,
#                                                   e.g. "--max-jobs-per-gpu 1" for clips that run alone;
#                                                   CALIBRATE_ARGS: options for calibrate, e.g. "--cold";
#                                                   MORE_CALIBRATIONS: further calibrations after the first, ";"-separated
#                                                   option lists, e.g. " ;--cold" (one more warm, then one cold))
# 1. plan the N-clip proof manifest (bench/gpu/make-manifest.py) from the profile alone;
# 2. avatar-batch calibrate synthetic-dit --quick on GPU 0 (a fresh history in $AVATAR_BATCH_HOME);
# 3. plan it again (from the calibration), then run it (one process per clip, packed);
# 4. keep the plans, the calibration's output, the run's status, its attempts' logs and the history file for the replay benchmark
#    (bench: avatar-batch-bench replay). Results: $OUT (the device tool's folder; /tmp/cal-out elsewhere).
# 5. (SECOND=1) the same clips as a second batch (a new folder, so a new store) planned from the calibration and the
#    first batch's history, then run: the second batch of the week (second-*).
# 6. (WARM=1) the same clips once more on warm workers (--workers auto: one load per worker, then requests), planned
#    from everything before: warm-*.
# 7. (WARM2=1) and again, the second warm batch, which learns S(k) from the first one's requests: warm2-*;
#    (WARM3=1) a third, from both: warm3-*.
set -u
N=${1:-32}
OUT=${OUT:-/tmp/cal-out}; mkdir -p "$OUT"
W=/tmp/calproof
AVATAR_BATCH_HOME=/tmp/abhome
. bench/gpu/lib.sh
rm -rf "$W" "$AVATAR_BATCH_HOME"
nvidia-smi --query-gpu=index,name,memory.total,memory.used --format=csv,noheader | tee "$OUT/gpus.csv"
python3 bench/gpu/make-manifest.py "$W" "$N" > /dev/null && cp "$W/gpu-proof.yaml" "$OUT/"
avatar-batch plan "$W/gpu-proof.yaml" --workers off ${RUN_ARGS:-} > "$OUT/plan-before.txt" 2>&1
stamp "calibrate"
a=$(date +%s.%N)
avatar-batch calibrate synthetic-dit --quick --gpu 0 ${CALIBRATE_ARGS:-} > "$OUT/calibrate.txt" 2> "$OUT/calibrate.log"; rc=$?
b=$(date +%s.%N)
python3 -c "print('calibrate: %.1f s wall, exit $rc' % ($b - $a))" | tee "$OUT/summary.txt"
cat "$OUT/calibrate.txt"
if [ -n "${MORE_CALIBRATIONS:-}" ]; then
  IFS=';' read -ra more <<< "$MORE_CALIBRATIONS"
  i=1
  for args in "${more[@]}"; do
    i=$((i + 1)); stamp "calibrate $i:$args"
    a=$(date +%s.%N)
    avatar-batch calibrate synthetic-dit --quick --gpu 0 $args > "$OUT/calibrate-$i.txt" 2> "$OUT/calibrate-$i.log"; rc=$?
    b=$(date +%s.%N)
    python3 -c "print('calibrate $i ($args): %.1f s wall, exit $rc' % ($b - $a))" | tee -a "$OUT/summary.txt"
    grep -E "probes|S\(|stored|ms/frame" "$OUT/calibrate-$i.txt" | sed "s/^/calibrate $i: /" | tee -a "$OUT/summary.txt"
  done
fi
# The probes' stores (each calibration's folder), for the replay.
(cd "$AVATAR_BATCH_HOME" && find calibrations -name 'state.sqlite*' -print0 | tar -czf "$OUT/calibration-stores.tgz" --null -T -)
avatar-batch plan "$W/gpu-proof.yaml" --workers off --explain ${RUN_ARGS:-} > "$OUT/plan-after.txt" 2>&1
grep -E "^predictions|^makespan" "$OUT/plan-before.txt" "$OUT/plan-after.txt" | tee -a "$OUT/summary.txt"
if [ "${CALIBRATE_ONLY:-}" = 1 ]; then keep_history history.sqlite; stamp "done"; exit 0; fi
run_batch "$W/gpu-proof.yaml" run.log run-status.json ""
keep_history history.sqlite
if [ "${SECOND:-}" = 1 ]; then
  W2=/tmp/calproof2; rm -rf "$W2"
  python3 bench/gpu/make-manifest.py "$W2" "$N" > /dev/null
  avatar-batch plan "$W2/gpu-proof.yaml" --workers off --explain ${RUN_ARGS:-} > "$OUT/second-plan.txt" 2>&1
  grep -E "^predictions|^makespan" "$OUT/second-plan.txt" | sed 's/^/second batch plan: /' | tee -a "$OUT/summary.txt"
  run_batch "$W2/gpu-proof.yaml" second-run.log second-status.json "second "
  keep_history history-after-second.sqlite
fi
# warm_batch FOLDER PREFIX: the clips on warm workers, planned from the history as it stands.
warm_batch() {
  rm -rf "$1"
  python3 bench/gpu/make-manifest.py "$1" "$N" > /dev/null
  avatar-batch plan "$1/gpu-proof.yaml" --explain ${RUN_ARGS:-} > "$OUT/$2-plan.txt" 2>&1
  grep -E "^predictions|^makespan|^workers" "$OUT/$2-plan.txt" | sed "s/^/$2 batch plan: /" | tee -a "$OUT/summary.txt"
  run_batch "$1/gpu-proof.yaml" "$2-run.log" "$2-status.json" "$2 " auto
  keep_history "history-after-$2.sqlite"
}
if [ "${WARM:-}" = 1 ]; then warm_batch /tmp/calproof3 warm; fi
if [ "${WARM2:-}" = 1 ]; then warm_batch /tmp/calproof4 warm2; fi
if [ "${WARM3:-}" = 1 ]; then warm_batch /tmp/calproof5 warm3; fi
stamp "done"
