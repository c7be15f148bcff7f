#!/usr/bin/env bash
# A batch on two GPU models of different speeds, end to end on this machine: two virtual cards, 24 GB and 80 GB, and
# the test renderer in its GPU-like mode (renderers/testkit/fake_renderer.py --model), whose CPU work takes FACTOR
# times as long on the 24 GB card (FAKE_SLOW_GPUS): a small old card beside a big fast one. Both models are
# calibrated (`calibrate --quick`, the 24 GB one slowed the same way), then the same batch (LONG clips of 6 clips'
# frames, SHORT of one) runs twice, one job a card at a time:
#   known:   the history holds both calibrations, so the 80 GB card is planned and run at its measured speed;
#   unknown: the 80 GB model's calibration is left out, so both cards are planned alike (as before 2026-12-02).
# The batch predicts for the 24 GB model (the first among equals). For each: the plan's makespan, the run's wall time,
# where the long clips ran, and how many clips each card took.
# Usage: bash bench/mixed-speeds.sh [LONG] [SHORT] [FACTOR]     (default 2 long, 10 short, 3x)
set -euo pipefail
cd "$(dirname "$0")/.."
long=${1:-2}
short=${2:-10}
factor=${3:-3}
swift build -c release --product avatar-batch 2>&1 | tail -1
bin=$PWD/.build/release/avatar-batch
w=$(mktemp -d /tmp/mixed-speeds.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$w"' EXIT
cat > "$w/fake.yaml" <<EOF
name: fake-model
command: [python3, "$PWD/renderers/testkit/fake_renderer.py", --output, "{output}", --clip, "{clip_id}", --model,
          --size, "{size}", --infer-frames, "{infer_frames}", --num-clip, "{num_clip}", --online-decode, "{online_decode}", --report]
sizes: ["384*256", "688*368"]
output_check: nonempty
max_jobs_per_gpu: 1
defaults: {size: "688*368", infer_frames: 48, sample_steps: 4}
memory:
  points: [{size: "384*256", infer_frames: 48, gb: 5}, {size: "688*368", infer_frames: 48, gb: 8}]
  headroom: 0.1
time:
  points: [{size: "384*256", infer_frames: 48, ms_per_frame: 10}]
  startup_s: 1
EOF
python3 - "$w" <<'PY'
import struct, sys, wave, zlib
w = sys.argv[1]
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(b"".join(b"\0" + b"\x80\x80\x80" * 16 for _ in range(16)))) + chunk(b"IEND", b"")
open(w + "/face.png", "wb").write(png)
with wave.open(w + "/a.wav", "wb") as f:
    f.setnchannels(1); f.setsampwidth(2); f.setframerate(16000); f.writeframes(b"\0\0" * 32000)
PY
{
  echo "version: 1"; echo "name: mixed"; echo "output_dir: out"; echo "renderer: fake.yaml"; echo "gpus: 1x24GB,1x80GB"
  echo "defaults: {image: face.png, audio: a.wav, prompt: p, num_clip: 1}"; echo "clips:"
  for i in $(seq 1 "$long"); do echo "  - {id: long$i, size: \"688*368\", num_clip: 6}"; done
  for i in $(seq 1 "$short"); do echo "  - {id: short$i, size: \"688*368\"}"; done
} > "$w/m.yaml"
export AVATAR_BATCH_HOME=$w/home-known
FAKE_SLOW_GPUS=virtual-0:$factor "$bin" calibrate "$w/fake.yaml" --gpus 1x24GB --quick --grace 1 > "$w/cal24.txt" 2>&1
"$bin" calibrate "$w/fake.yaml" --gpus 1x80GB --quick --grace 1 > "$w/cal80.txt" 2>&1
mkdir -p "$w/home-unknown"
# The same history less the 80 GB model's calibration.
cp "$w/home-known/history.sqlite" "$w/home-unknown/history.sqlite"
python3 -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"DELETE FROM calibrations WHERE gpu_model = 'virtual 80GB'\"); c.commit()" \
  "$w/home-unknown/history.sqlite"
echo "| the 80 GB model's speed | plan: makespan | run: wall | long clips ran on | clips on 24 GB / 80 GB | predictions |"
echo "| --- | --- | --- | --- | --- | --- |"
for kind in known unknown; do
  export AVATAR_BATCH_HOME=$w/home-$kind
  rm -rf "$w/out"
  "$bin" plan "$w/m.yaml" --json > "$w/plan-$kind.json"
  # Each kind's run adds to its own home's history only.
  s=$(date +%s.%N)
  FAKE_SLOW_GPUS=virtual-0:$factor "$bin" run "$w/m.yaml" --quiet --grace 1 > "$w/run-$kind.txt" 2>&1
  e=$(date +%s.%N)
  "$bin" status "$w/m.yaml" --json > "$w/status-$kind.json"
  python3 - "$kind" "$w/plan-$kind.json" "$w/status-$kind.json" "$s" "$e" <<'PY'
import json, sys
kind, plan, status, s, e = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3])), float(sys.argv[4]), float(sys.argv[5])
assert status["counts"]["succeeded"] == len(status["jobs"]), status["counts"]
cards, longs = [0, 0], []
for j in status["jobs"]:
    g = j["attempts"][-1]["gpu"]
    cards[g] += 1
    if j["id"].startswith("long"):
        longs.append(["24 GB", "80 GB"][g])
print(f'| {kind} | {plan["makespan_s"]:.1f} s | {e - s:.1f} s | {", ".join(longs)} | {cards[0]} / {cards[1]} | {plan["prediction_basis"]} |')
PY
done
