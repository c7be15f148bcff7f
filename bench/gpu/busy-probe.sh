#!/usr/bin/env bash
# Who slows whom on a shared GPU (docs/benchmarks.md, "Who slows whom"), on the GPU host, from the repository root
# with .carry/la/ffbin.tar.xz carried. No avatar-batch binary: synthetic-dit is run directly.
#   bash bench/gpu/busy-probe.sh
# For each probe job (three sizes, offline and online decode):
#   1. alone, with nvidia-smi sampling utilization.gpu every 50 ms: its render time and the GPU's busy fraction
#      while it rendered;
#   2. beside a long-running neighbour that renders the whole time (a large online job, then a small online one):
#      its render time there.
# Then alone once more (the noise of a solo time). Results: $OUT/probe.jsonl (one line per run), $OUT/util.csv
# (the samples), $OUT/console.txt. bench/gpu/busy-fit.py reads them.
set -u
OUT=${OUT:-/tmp/busy-out}; mkdir -p "$OUT"
W=/tmp/busyprobe
. bench/gpu/direct.sh
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader | tee "$OUT/gpus.csv"
nvidia-smi --query-gpu=timestamp,utilization.gpu --format=csv,noheader,nounits -lms 50 > "$OUT/util.csv" &
sampler=$!

# name size infer_frames num_clip online
probes=(
  "big-off 720*1280 48 6 False"
  "big-on 720*1280 48 6 True"
  "mid-off 688*368 48 12 False"
  "mid-on 688*368 48 12 True"
  "small-off 384*256 32 20 False"
  "small-on 384*256 32 20 True"
)

# run NAME SIZE FRAMES CLIPS ONLINE BESIDE: one job, its report line (plus when it ended) appended to probe.jsonl.
run() {
  local name=$1 size=$2 frames=$3 clips=$4 online=$5 beside=$6 line end
  line=$(python3 "$dit" --size "$size" --infer_frames "$frames" --num_clip "$clips" --sample_steps 4 --online_decode "$online" \
         --audio "$W/audio.wav" --output "$W/$name-$beside.mp4" --repeat 2 2> "$W/$name-$beside.err" | tail -1)
  end=$(date +%s.%N)
  echo "{\"probe\": \"$name\", \"size\": \"$size\", \"frames\": $frames, \"clips\": $clips, \"online\": \"$online\", \"beside\": \"$beside\", \"ended\": $end, \"report\": ${line:-null}}" >> "$OUT/probe.jsonl"
  echo "$name beside $beside: $line"
}

for p in "${probes[@]}"; do run $p alone; done
# Neighbours: online decode (memory stays flat however long they run), long enough to outlast every probe.
for nb in "big 720*1280 48 400" "small 384*256 32 4000"; do
  set -- $nb
  python3 "$dit" --size "$2" --infer_frames "$3" --num_clip "$4" --sample_steps 4 --online_decode True \
    --audio "$W/audio.wav" --output "$W/neighbour-$1.mp4" --repeat 2 > /dev/null 2> "$W/neighbour-$1.err" &
  npid=$!
  echo "{\"neighbour\": \"$1\", \"started\": $(date +%s.%N)}" >> "$OUT/probe.jsonl"
  sleep 12   # its start-up and weight load, so that it renders throughout
  for p in "${probes[@]}"; do run $p "$1"; done
  kill $npid; wait $npid 2>/dev/null
  echo "{\"neighbour\": \"$1\", \"stopped\": $(date +%s.%N)}" >> "$OUT/probe.jsonl"
done
for p in "${probes[@]}"; do run $p alone2; done
kill $sampler
echo done
