#!/usr/bin/env bash
# Warm workers against cold processes on the GPU host (docs/workers.md, docs/benchmarks.md), from the repository root
# with .carry/la carried (bench/liveavatar/prepare.sh fills it: the portable binary and a static ffmpeg):
#   bash bench/gpu/warm-proof.sh [N] [WEIGHTS_GB]
# N short synthetic-dit clips of mixed sizes (default 48), each render reading WEIGHTS_GB of weights from a local
# file (default 12) the way a checkpoint load does, run three times on every GPU of the host:
#   warm   avatar-batch run            (warm workers: one load per worker)
#   cold   avatar-batch run --workers off                      (one process per clip, packed)
#   serial avatar-batch run --workers off --max-jobs-per-gpu 1 (one process per clip, one per card)
# then a SIGKILL of a warm run mid-batch and the same command again. Checks, per run: every clip succeeded once,
# every output has video and audio (ffprobe), every clip ran on the GPU it was assigned (the renderer's own
# report of its device), no renderer or worker left. Results: $OUT (the device tool's folder; /tmp/warm-out elsewhere).
set -u
N=${1:-48}; GB=${2:-12}
OUT=${OUT:-/tmp/warm-out}; mkdir -p "$OUT"
repo=$PWD; carry=$repo/.carry/la; W=/tmp/warm
t0=$(date +%s); stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
. bench/gpu/ffmpeg.sh
mkdir -p /tmp/ab && tar -xJf "$carry/avatar-batch.tar.xz" -C /tmp/ab || exit 1
export PATH=/tmp/ab/bin:$PATH
rm -rf "$W"; mkdir -p "$W/renderers/synthetic-dit"
nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader | tee "$OUT/gpus.csv"
stamp "writing $GB GB of weights"
python3 - "$W/weights.bin" "$GB" <<'PY'
import os, sys
block = os.urandom(256 << 20)
with open(sys.argv[1], "wb") as f:
    for _ in range(int(float(sys.argv[2]) * 4)):
        f.write(block)
PY
stamp "weights written"
# The shipped profile and script, with the weights read from the file: memory rises by what the file adds over the
# default 8 GB (the 0.75 GB of compute blocks stay), and so does the load.
python3 - "$repo/renderers/synthetic-dit.yaml" "$W/renderers/synthetic-dit.yaml" "$GB" "$W/weights.bin" <<'PY'
import re, sys
src, dst, gb, path = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
delta = gb + 0.75 - 8.0
text = open(src).read()
text = re.sub(r"gb: ([0-9.]+)\}", lambda m: "gb: %.1f}" % (float(m.group(1)) + delta), text)
text = text.replace("resident_gb: 8.5", "resident_gb: %.1f" % (8.5 + delta))
text = text.replace("  PYTHONUNBUFFERED: \"1\"", "  PYTHONUNBUFFERED: \"1\"\n  SYNTHETIC_DIT_WEIGHTS_FILE: \"%s\"" % path)
text = text.replace("startup_s: 4", "startup_s: %.0f" % (4 + gb / 3)).replace("load_s: 4", "load_s: %.0f" % (4 + gb / 3))
open(dst, "w").write(text)
PY
cp "$repo/renderers/synthetic-dit/synthetic_dit.py" "$W/renderers/synthetic-dit/"
export AVATAR_BATCH_RENDERERS=$W/renderers
ffmpeg -nostdin -loglevel error -y -stream_loop 5 -i "$repo/manifests/demo-assets/lesson-01.wav" -t 5 "$W/audio.wav"
make() {  # NAME: a manifest of N clips writing to $W/NAME
  python3 - "$W" "$1" "$N" "$repo" <<'PY'
import sys
w, name, n, repo = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
mix = [("384*256", 1), ("688*368", 1), ("704*384", 2), ("384*256", 2), ("688*368", 2), ("720*400", 1)]
lines = [f"version: 1\nname: {name}\noutput_dir: {w}/{name}\nrenderer: synthetic-dit\ngpus: auto",
         "retry: {max_attempts: 3, on_oom: [isolate, {online_decode: true}]}",
         f"defaults: {{image: {repo}/manifests/demo-assets/teacher.png, audio: {w}/audio.wav, prompt: a teacher, "
         "infer_frames: 48, sample_steps: 4, online_decode: true, extra_args: [--repeat, \"2\"]}", "clips:"]
for k in range(n):
    size, clips = mix[k % len(mix)]
    lines.append(f'  - {{id: c{k:03d}, size: "{size}", num_clip: {clips}}}')
open(f"{w}/{name}.yaml", "w").write("\n".join(lines) + "\n")
PY
}
check() {  # NAME: counts, ffprobe, assignment, leftovers
  avatar-batch status "$W/$1.yaml" --json > "$OUT/$1-status.json"
  for f in "$W/$1"/*.mp4; do echo "$(basename "$f") $(ffprobe -v error -show_entries stream=codec_type -of csv=p=0 "$f" | sort | tr '\n' ' ')"; done > "$W/$1-ffprobe.txt"
  python3 "$repo/bench/gpu/warm-check.py" "$1" "$OUT/$1-status.json" "$W/$1-ffprobe.txt" "$OUT/gpus.csv" "$W/$1/.avatar-batch" | tee -a "$OUT/summary.txt"
  echo "$1: renderer or worker processes left: $(pgrep -fc synthetic_dit.py)" | tee -a "$OUT/summary.txt"
}
for name in warm cold serial kill; do make "$name"; done
avatar-batch plan "$W/warm.yaml" > "$OUT/plan-warm.txt" 2>&1
avatar-batch plan "$W/cold.yaml" --workers off > "$OUT/plan-cold.txt" 2>&1
run() {  # NAME ARGS...: the run's wall time
  local name=$1; shift
  stamp "run $name $*"
  local a=$(date +%s.%N)
  avatar-batch run "$W/$name.yaml" "$@" 2> "$OUT/$name.log"; local rc=$?
  local b=$(date +%s.%N)
  python3 -c "print('$name: %.1f s wall, exit $rc' % ($b - $a))" | tee -a "$OUT/summary.txt"
  check "$name"
}
run warm
run cold --workers off
run serial --workers off --max-jobs-per-gpu 1
stamp "kill test"
avatar-batch run "$W/kill.yaml" 2> "$OUT/kill-1.log" &
pid=$!
for _ in $(seq 240); do
  sleep 0.25
  done_n=$(avatar-batch status "$W/kill.yaml" --json --summary 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"].get("succeeded", 0))' 2>/dev/null || echo 0)
  [ "${done_n:-0}" -ge $((N / 3)) ] && break
done
kill -9 $pid; wait $pid 2>/dev/null
avatar-batch status "$W/kill.yaml" --json > "$OUT/kill-before.json"
echo "killed the orchestrator with $done_n done; workers running right after: $(pgrep -fc 'synthetic_dit.py --worker')" | tee -a "$OUT/summary.txt"
sleep 3
echo "workers running 3 s later (they saw their socket close): $(pgrep -fc 'synthetic_dit.py --worker')" | tee -a "$OUT/summary.txt"
avatar-batch run "$W/kill.yaml" 2> "$OUT/kill-2.log"; echo "second run exit $?" | tee -a "$OUT/summary.txt"
check kill
python3 - "$OUT/kill-before.json" "$OUT/kill-status.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
before, after = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
done = {j["id"]: len(j["attempts"]) for j in before["jobs"] if j["state"] == "succeeded"}
again = [j["id"] for j in after["jobs"] if j["id"] in done and len(j["attempts"]) != done[j["id"]]]
print(f"kill: {len(done)} done before the kill, rendered again after it: {len(again)} {again}")
PY
grep -c "worker .* starting" "$OUT"/warm.log | sed 's/^/warm run: workers started: /' | tee -a "$OUT/summary.txt"
stamp "done"
