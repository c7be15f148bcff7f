# Sourced by the GPU scripts (calibration-proof.sh, from-history.sh) on the GPU host, from the repository root with
# .carry/la carried, after setting OUT (where results go) and AVATAR_BATCH_HOME (the history's folder).
# Unpacks the portable binary into /tmp and puts it first on PATH, with a static ffmpeg (ffmpeg.sh), then defines:
#   stamp TEXT           TEXT after the seconds since sourcing
#   keep_history DEST    the history as SQLite's backup sees it (the file and its write-ahead log), into $OUT/DEST
#   run_batch MANIFEST LOG STATUS LABEL [WORKERS]
#                        runs it (--workers WORKERS, default off), keeps its log as $OUT/LOG, its status as $OUT/STATUS
#                        and its attempts' logs as $OUT/<LABEL->logs.tgz, and adds its wall time, counts and OOM
#                        attempts to $OUT/summary.txt, each line starting with LABEL
repo=$PWD; carry=$repo/.carry/la
t0=$(date +%s); stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
. bench/gpu/ffmpeg.sh
mkdir -p /tmp/ab && tar -xJf "$carry/avatar-batch.tar.xz" -C /tmp/ab || exit 1
export PATH=/tmp/ab/bin:$PATH AVATAR_BATCH_RENDERERS=$repo/renderers AVATAR_BATCH_HOME

keep_history() { python3 -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))" "$AVATAR_BATCH_HOME/history.sqlite" "$OUT/$1"; }

run_batch() {
  local manifest=$1 log="$OUT/$2" status="$OUT/$3" label=$4 workers=${5:-off} a b rc
  stamp "${label}run"
  a=$(date +%s.%N)
  # RUN_ARGS: extra options for every run and plan (e.g. --max-jobs-per-gpu 1: every clip alone), split on spaces.
  avatar-batch run "$manifest" --workers "$workers" ${RUN_ARGS:-} 2> "$log"; rc=$?
  b=$(date +%s.%N)
  python3 -c "print('${label}run: %.1f s wall, exit $rc' % ($b - $a))" | tee -a "$OUT/summary.txt"
  avatar-batch status "$manifest" --json > "$status"
  python3 -c "import json; d=json.load(open('$status')); print('${label}counts', d['counts']); print('${label}OOM attempts', sum(a['classification']=='oom' for j in d['jobs'] for a in j['attempts']))" | tee -a "$OUT/summary.txt"
  # The attempts' logs: synthetic-dit prints its report (render_seconds, startup_s, load_s) at the end of each.
  tar -czf "$OUT/${label// /}${label:+-}logs.tgz" -C "$(dirname "$manifest")/videos/.avatar-batch" logs
}
