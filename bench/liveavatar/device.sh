#!/usr/bin/env bash
# Runs on the GPU host (one H200), from the repository root, with .carry/la carried (see prepare.sh):
#   bash bench/liveavatar/device.sh measure CASE...     measure.py's cases in one warm process
#   bash bench/liveavatar/device.sh cli MANIFEST [ARGS]  avatar-batch run MANIFEST with the real liveavatar profile
#   bash bench/liveavatar/device.sh batch NAME MANIFEST [ARGS]  the same, with the page cache kept, the wall time
#       timed, and the store's status, the worker and attempt logs packed into $OUT/NAME.tgz (warm against cold)
#   bash bench/liveavatar/device.sh calibrate [ARGS]  avatar-batch calibrate liveavatar ARGS (e.g. --quick), the
#       history (in $AVATAR_BATCH_HOME, default /tmp/abhome) and the probes' stores and logs packed into $OUT
# Both first build random weights in the released layout (make_weights.py, about 48 GB on local disk).
# Results go to $OUT (the device tool's folder; ./out-la elsewhere): JSON lines, logs, an nvidia-smi trace.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
carry=$repo/.carry/la
OUT=${OUT:-$repo/out-la}
mkdir -p "$OUT"
mode=$1; shift
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

site=/tmp/la-site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$carry"/wheels/*.whl || exit 1
mkdir -p /tmp/ffbin && tar -xJf "$carry/ffbin.tar.xz" -C /tmp/ffbin && chmod +x /tmp/ffbin/*
export LIVEAVATAR_HOME=/tmp/LiveAvatar
mkdir -p "$LIVEAVATAR_HOME" && tar -xJf "$carry"/liveavatar-*.tar.xz -C "$LIVEAVATAR_HOME"
export PATH=/tmp/ffbin:$(dirname "$(command -v python3)"):$PATH
export IMAGEIO_FFMPEG_EXE=/tmp/ffbin/ffmpeg
export PYTHONPATH=$site:$carry/pylib:$here/shims
export HF_HUB_OFFLINE=1 ENABLE_COMPILE=${ENABLE_COMPILE:-false} PYTHONUNBUFFERED=1
stamp "setup done; $(ffmpeg -version | head -1); $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader)"
python3 -c 'import torch, diffusers, transformers, peft; print("torch", torch.__version__, "diffusers", diffusers.__version__, "transformers", transformers.__version__, "peft", peft.__version__)'

nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 250 >"$OUT/smi.csv" 2>/dev/null &
smi=$!
trap 'kill $smi 2>/dev/null' EXIT
if [ -f "$LIVEAVATAR_HOME/ckpt/.complete" ]; then
  stamp "weights already on this host (an earlier call): $(du -sh "$LIVEAVATAR_HOME/ckpt" | cut -f1)"
else
  python3 "$here/make_weights.py" "$LIVEAVATAR_HOME" 2>&1 | tee "$OUT/weights.log" | grep '^{' || exit 1
  touch "$LIVEAVATAR_HOME/ckpt/.complete"
  stamp "weights written: $(du -sh "$LIVEAVATAR_HOME/ckpt" | cut -f1)"
fi

case $mode in
  calibrate)
    mkdir -p /tmp/ab && tar -xJf "$carry/avatar-batch.tar.xz" -C /tmp/ab
    bin=$(find /tmp/ab -name avatar-batch -type f | head -1)
    export AVATAR_BATCH_RENDERERS=$repo/renderers AVATAR_BATCH_HOME=${AVATAR_BATCH_HOME:-/tmp/abhome}
    stamp "calibrate starts"
    timeout "${RUN_LIMIT:-450}" "$bin" calibrate liveavatar "$@" >"$OUT/calibrate.log" 2>&1
    echo "calibrate exit $?"; stamp "calibrate ended"; tail -30 "$OUT/calibrate.log"
    for st in "$AVATAR_BATCH_HOME"/calibrations/*/*/.avatar-batch/state.sqlite; do
      [ -f "$st" ] && "$bin" status --state "$st" --json >"$(dirname "$(dirname "$st")")/status.json"
    done
    python3 - "$AVATAR_BATCH_HOME"/calibrations/*/solo/status.json <<'PY'
import json, sys
for path in sys.argv[1:]:
    for j in json.load(open(path))["jobs"]:
        for a in j["attempts"]:
            print(f'  {j["id"]}: {a["classification"]} in {a.get("seconds") or 0:.1f} s, peak {a.get("peak_gb") or 0:.2f} GB, worker {a.get("worker")}')
PY
    tar -C "$AVATAR_BATCH_HOME" -czf "$OUT/calibration.tgz" --exclude='*.mp4' --exclude='*.wav' --exclude='*.png' . 2>/dev/null ;;
  measure)
    MASTER_PORT=29611 python3 "$here/measure.py" "$LIVEAVATAR_HOME" "$OUT/measure.jsonl" "$@" >"$OUT/measure.log" 2>&1
    echo "measure.py exit $?"; grep '^{' "$OUT/measure.log"; tail -5 "$OUT/measure.log" ;;
  cli)
    mkdir -p /tmp/ab && tar -xJf "$carry/avatar-batch.tar.xz" -C /tmp/ab
    bin=$(find /tmp/ab -name avatar-batch -type f | head -1)
    manifest=$1; shift
    work=/tmp/la-batch && mkdir -p "$work" && cp -r "$(dirname "$manifest")"/. "$work"/
    cp "$LIVEAVATAR_HOME"/inputs/* "$work"/
    export AVATAR_BATCH_RENDERERS=$repo/renderers
    (cd "$work" && "$bin" validate "$(basename "$manifest")" && "$bin" plan "$(basename "$manifest")" --explain)
    # The page cache is dropped first, so the jobs load their 48 GB from disk as after a reboot.
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null && stamp "page cache dropped"
    stamp "run starts"
    (cd "$work" && timeout "${RUN_LIMIT:-300}" "$bin" run "$(basename "$manifest")" --report "$OUT/report" "$@") >"$OUT/run.log" 2>&1
    echo "run exit $?"; stamp "run ended"; tail -25 "$OUT/run.log"
    (cd "$work" && "$bin" status "$(basename "$manifest")" --json) >"$OUT/status.json"
    find "$work" -name '*.log' -path '*attempt*' | head -4 | while read -r f; do echo "== $f"; grep -E "Error|error|Traceback|parameters are loaded|Finished|Saving" "$f" | head -8; done
    tar -C "$work" -czf "$OUT/batch-logs.tgz" --exclude='*.mp4' . 2>/dev/null ;;
  batch)
    mkdir -p /tmp/ab && tar -xJf "$carry/avatar-batch.tar.xz" -C /tmp/ab
    bin=$(find /tmp/ab -name avatar-batch -type f | head -1)
    name=$1; manifest=$2; shift 2
    work=/tmp/la-$name && rm -rf "$work" && mkdir -p "$work" && cp -r "$(dirname "$manifest")"/. "$work"/
    cp "$LIVEAVATAR_HOME"/inputs/* "$work"/
    export AVATAR_BATCH_RENDERERS=$repo/renderers
    (cd "$work" && "$bin" plan "$(basename "$manifest")" "$@" 2>&1 | tail -4) | tee "$OUT/$name-plan.txt"
    # The plan as JSON, from what the history holds and from the profile alone (prediction against observation).
    (cd "$work" && "$bin" plan "$(basename "$manifest")" --json "$@" >"$OUT/$name-plan.json" 2>/dev/null
     "$bin" plan "$(basename "$manifest")" --json --no-history "$@" >"$OUT/$name-plan-profile.json" 2>/dev/null)
    stamp "run $name starts"
    a=$(date +%s.%N)
    (cd "$work" && timeout "${RUN_LIMIT:-500}" "$bin" run "$(basename "$manifest")" "$@") >"$work/run.log" 2>&1
    rc=$?; b=$(date +%s.%N)
    python3 -c "print('$name: %.1f s wall, exit $rc' % ($b - $a))" | tee -a "$OUT/summary.txt"
    (cd "$work" && "$bin" status "$(basename "$manifest")" --json) >"$work/status.json"
    python3 - "$work/status.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
d = json.load(open(sys.argv[1]))
print("  counts:", d["counts"])
for j in d["jobs"]:
    for a in j["attempts"]:
        print(f'  {j["id"]} attempt {a["number"]}: {a["classification"]} in {a.get("seconds") or 0:.1f} s on GPU {a.get("gpu")}'
              f'{" worker " + a["worker"] if a.get("worker") else ""}, peak {a.get("peak_gb") or 0:.1f} GB; {(a.get("note") or "")[:160]}')
PY
    grep -hE "worker: |ready on|starting on" "$work"/out/.avatar-batch/logs/workers/*.log "$work/run.log" 2>/dev/null | tail -30
    for f in "$work"/out/*.mp4; do echo "$(basename "$f") $(ffprobe -v error -show_entries stream=codec_type:format=duration -of csv=p=0 "$f" | tr '\n' ' ')"; done | tee -a "$OUT/summary.txt"
    echo "  processes left: $(pgrep -fc 'worker.py|s2v_streaming_interact')" | tee -a "$OUT/summary.txt"
    tar -C "$work" -czf "$OUT/$name.tgz" --exclude='*.mp4' --exclude='*.wav' --exclude='*.jpg' --exclude='*.png' . 2>/dev/null ;;
esac
stamp "done"
