#!/usr/bin/env bash
# The single-GPU proof (run on the GPU host after `. bench/gpu/prepare.sh`):
#   bash bench/gpu/h100-proof.sh WORKDIR N OUTDIR
# 1. N synthetic-dit clips rendered by `avatar-batch run` (packing, OOM ladder), nvidia-smi sampled every 0.5 s;
# 2. the same jobs one at a time (`--max-jobs-per-gpu 1`: a serial loop with the same retry rules);
# 3. a summary: makespans, throughput ratio, attempts and classifications, predicted vs observed peaks,
#    ffprobe of every output, the highest device memory.used seen against the card's size.
set -u
W=${1:-/tmp/proof}; N=${2:-24}; OUT=${3:-/tmp/proof-out}
rm -rf "$W"; mkdir -p "$OUT"
python3 bench/gpu/make-manifest.py "$W" "$N" > /dev/null
sed "s|$W/videos|$W/serial|; s|name: gpu-proof|name: gpu-proof-serial|" "$W/gpu-proof.yaml" > "$W/serial.yaml"
cp "$W/gpu-proof.yaml" "$OUT/"
(while true; do nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits >> "$W/smi.csv"; sleep 0.5; done) &
SMI=$!
t0=$(date +%s.%N); avatar-batch run "$W/gpu-proof.yaml" 2> "$OUT/packed.log"; rc1=$?; t1=$(date +%s.%N)
kill $SMI
avatar-batch run "$W/serial.yaml" --max-jobs-per-gpu 1 2> "$OUT/serial.log"; rc2=$?; t2=$(date +%s.%N)
avatar-batch status "$W/gpu-proof.yaml" --json > "$OUT/packed-status.json"
avatar-batch status "$W/serial.yaml" --json > "$OUT/serial-status.json"
for f in "$W"/videos/*.mp4; do echo "$(basename "$f") $(ffprobe -v error -show_entries stream=codec_type:format=duration -of csv=p=0 "$f" | tr '\n' ' ')"; done > "$OUT/ffprobe.txt"
python3 - "$OUT" "$t0" "$t1" "$t2" "$rc1" "$rc2" "$W/smi.csv" <<'PY' | tee "$OUT/summary.txt"
import json, sys
out, t0, t1, t2, rc1, rc2, smi = sys.argv[1], *map(float, sys.argv[2:5]), sys.argv[5], sys.argv[6], sys.argv[7]
packed, serial = t1 - t0, t2 - t1
print(f"packed run: {packed:.1f} s (exit {rc1}); serial one-at-a-time: {serial:.1f} s (exit {rc2}); throughput x{serial / packed:.2f}")
d = json.load(open(f"{out}/packed-status.json"))
print("counts:", d["counts"])
ooms = 0
for j in d["jobs"]:
    att = j["attempts"]
    ooms += sum(a["classification"] == "oom" for a in att)
    steps = " -> ".join(f'{a["classification"]}[{a["settings"] or "as written"}]' for a in att)
    print(f'{j["id"]}: {j["state"]}; predicted {j.get("predicted_gb", 0):.1f} GB, observed peak {j.get("observed_peak_gb") or 0:.1f} GB; {steps}')
print(f"OOM attempts: {ooms}")
used = [tuple(map(float, l.split(","))) for l in open(smi) if l.strip()]
print(f"device memory.used: max {max(u for u, _ in used):.0f} MiB of {used[0][1]:.0f} MiB over {len(used)} samples")
notes = [a.get("note", "") for j in d["jobs"] for a in j["attempts"] if a["classification"] == "succeeded"]
print(f"succeeded attempts whose renderer saw exactly its assigned GPU: {sum('matches the assignment' in n for n in notes)} of {len(notes)}")
PY
cat "$OUT/ffprobe.txt" | awk '{ if ($2 != "video" || $3 != "audio") bad++ } END { print NR " outputs, " (bad+0) " without video+audio" }' | tee -a "$OUT/summary.txt"
