#!/usr/bin/env bash
# Aggregate throughput S(k) of k identical synthetic-dit jobs started together on one GPU (k = 1..4), from
# wall-clock time: S(k) = k x T(1) / T(k). Usage (GPU host, after prepare.sh): bash bench/gpu/sharing.sh SIZE FRAMES CLIPS
set -u
size=${1:-688*368}; frames=${2:-48}; clips=${3:-12}
wav=/tmp/sharing.wav
ffmpeg -nostdin -loglevel error -y -stream_loop 20 -i manifests/demo-assets/lesson-01.wav -t 60 $wav
job() { python3 renderers/synthetic-dit/synthetic_dit.py --size "$size" --infer_frames "$frames" --num_clip "$clips" \
          --online_decode True --audio $wav --output /tmp/sharing-$1.mp4 > /dev/null; }
t1=0
for k in 1 2 3 4; do
  s=$(date +%s.%N)
  for i in $(seq $k); do job $i & done
  wait
  t=$(python3 -c "import time; print(time.time() - $s)")
  [ $k -eq 1 ] && t1=$t
  python3 -c "print(f'k={$k}: {$t:.2f} s, S({$k}) = {$k * $t1 / $t:.2f}')"
done
