#!/usr/bin/env bash
# The Slurm executor against a running Slurm (e.g. bash scripts/local-slurm.sh start: 4 fake GPUs x 24 shards):
# N clips of the fake renderer, each predicted at 10 GB (so --gres=shard:10: two per 24-shard GPU) and sleeping
# S seconds. Prints the wall time, the most jobs seen together on one GPU (from inside the jobs) and how many
# Slurm jobs were submitted. Usage: bash bench/slurm.sh [N] [S]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-48}; sleep_s=${2:-2}
swift build --product avatar-batch 2>&1 | tail -1
bin=$(swift build --show-bin-path)/avatar-batch
w=$(mktemp -d)
cp manifests/demo-assets/teacher.png "$w/face.png"; cp manifests/demo-assets/lesson-03.wav "$w/a.wav"
cat > "$w/fake.yaml" <<YAML
name: fake
command: [python3, "$PWD/renderers/testkit/fake_renderer.py", --output, "{output}", --clip, "{clip_id}", --ledger, "$w/ledger.jsonl", --sleep, "$sleep_s"]
output_check: nonempty
max_jobs_per_gpu: 4
memory: {points: [{size: "384*256", infer_frames: 48, gb: 10}], headroom: 0}
time: {points: [{size: "384*256", infer_frames: 48, ms_per_frame: 1}]}
YAML
{ printf 'version: 1\nname: slurm-bench\noutput_dir: out\nrenderer: fake.yaml\n'
  printf 'defaults: {image: face.png, audio: a.wav, prompt: p, size: "384*256", num_clip: 1}\nclips:\n'
  for i in $(seq "$n"); do printf '  - {id: s%05d}\n' "$i"; done; } > "$w/m.yaml"
s=$(date +%s.%N)
"$bin" run "$w/m.yaml" --executor slurm --poll-interval 0.5 --quiet --no-probe
e=$(date +%s.%N)
python3 - "$w/ledger.jsonl" "$n" "$s" "$e" "$sleep_s" <<'PY'
import json, sys
ledger, n, s, e, sl = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
ev = [json.loads(l) for l in open(ledger)]
spans, opened = {}, {}
for x in ev:
    if x["event"] == "start": opened[x["clip"]] = (x["cuda_visible_devices"], x["t"])
    if x["event"] == "end": g, t0 = opened[x["clip"]]; spans.setdefault(g, []).append((t0, x["t"]))
most = {g: max(sum(1 for a, b in l if a <= t0 + 0.01 < b) for t0, _ in l) for g, l in spans.items()}
gpus = len(spans)
ideal = n * sl / (gpus * 2)
print(f"{n} jobs of {sl:.0f} s on {gpus} GPUs: {e - s:.1f} s wall (ideal at 2 per GPU: {ideal:.1f} s); "
      f"most together on one GPU: {max(most.values())}; renders: {sum(len(l) for l in spans.values())}")
PY
rm -rf "$w"
