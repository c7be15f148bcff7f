#!/usr/bin/env bash
# Orchestrator overhead: N trivial jobs (cp of an image) on 8 virtual GPUs, 4 jobs each, through the whole run
# loop (store transactions, process groups, output checks). Usage: bash bench/overhead.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
swift build -c release --product avatar-batch 2>&1 | tail -1
w=$(mktemp -d)
cp manifests/demo-assets/teacher.png "$w/face.png"; cp manifests/demo-assets/lesson-03.wav "$w/a.wav"
cat > "$w/cp.yaml" <<'YAML'
name: copy
command: [cp, "{image}", "{output}"]
output_check: nonempty
output_extension: png
max_jobs_per_gpu: 4
memory: {points: [{size: "384*256", infer_frames: 48, gb: 10}], headroom: 0}
time: {points: [{size: "384*256", infer_frames: 48, ms_per_frame: 1}]}
sharing: {2: 1.5, 4: 2.0}
YAML
{ printf 'version: 1\nname: overhead\noutput_dir: out\nrenderer: cp.yaml\ngpus: 8x80GB\n'
  printf 'defaults: {image: face.png, audio: a.wav, prompt: p, size: "384*256", num_clip: 1}\nclips:\n'
  for i in $(seq "$n"); do printf '  - {id: c%05d}\n' "$i"; done; } > "$w/m.yaml"
s=$(date +%s.%N)
.build/release/avatar-batch run "$w/m.yaml" --quiet
e=$(date +%s.%N)
python3 -c "print(f'$n jobs in {$e - $s:.2f} s: {$n / ($e - $s):.0f} jobs/s')"
rm -rf "$w"
