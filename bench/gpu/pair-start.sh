#!/usr/bin/env bash
# Why calibrate's S(2) reads lower than a render beside a neighbour (docs/benchmarks.md): the same synthetic-dit
# probe (688*368 x48, offline) as fresh processes, on the GPU host from the repository root with
# .carry/la/ffbin.tar.xz carried. No avatar-batch binary.
#   bash bench/gpu/pair-start.sh
#   alone:     7 clips alone, twice; 24 clips alone, once
#   together:  two of 7 clips started at the same moment, twice; two of 24 clips, once
#   beside:    7 clips started while a long one (400 clips, online) already renders, twice
# Results: $OUT/pairs.jsonl, one line per process with its report (render_seconds: its work once loaded).
set -u
OUT=${OUT:-/tmp/pair-out}; mkdir -p "$OUT"
W=/tmp/pairstart
. bench/gpu/direct.sh

# job NAME CLIPS ONLINE GROUP: one process; its report line goes to pairs.jsonl tagged with GROUP.
job() {
  local line
  line=$(python3 "$dit" --size "688*368" --infer_frames 48 --num_clip "$2" --sample_steps 4 --online_decode "$3" \
         --audio "$W/audio.wav" --output "$W/$1.mp4" --repeat 2 2> "$W/$1.err" | tail -1)
  echo "{\"name\": \"$1\", \"clips\": $2, \"group\": \"$4\", \"report\": ${line:-null}}" >> "$OUT/pairs.jsonl"
}

for i in 1 2; do job "alone7-$i" 7 False alone; done
job alone24 24 False alone
for i in 1 2; do job "t7a-$i" 7 False "together7-$i" & job "t7b-$i" 7 False "together7-$i" & wait; done
job t24a 24 False together24 & job t24b 24 False together24 & wait
python3 "$dit" --size "688*368" --infer_frames 48 --num_clip 400 --sample_steps 4 --online_decode True \
  --audio "$W/audio.wav" --output "$W/neighbour.mp4" --repeat 2 > /dev/null 2> "$W/neighbour.err" &
npid=$!
sleep 10
for i in 1 2; do job "beside7-$i" 7 False beside; done
kill $npid; wait $npid 2>/dev/null
python3 - "$OUT/pairs.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def r(n): return next(x["report"]["render_seconds"] for x in rows if x["name"] == n)
a7 = (r("alone7-1") + r("alone7-2")) / 2
for x in rows:
    rep = x["report"] or {}
    base = a7 if x["clips"] == 7 else r("alone24")
    print(f"{x['name']:10s} {x['group']:12s} render {rep.get('render_seconds', float('nan')):6.2f} s  x{rep.get('render_seconds', 0) / base:4.2f} of alone")
EOF
