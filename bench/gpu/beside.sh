#!/usr/bin/env bash
# How one synthetic-dit job starts up and renders beside others already rendering on the same GPU (the co-tenant
# question, docs/calibration.md). For each probe job P and each neighbourhood N (none, or 3 jobs of one kind started
# 8 s earlier so that they render throughout), runs P once and prints its own report: the start-up (interpreter, torch
# import, CUDA init, weights: startup_s + load_s) and the render (render_s). Usage (GPU host, ffmpeg on PATH):
#   bash bench/gpu/beside.sh > beside.txt
set -u
wav=/tmp/beside.wav
ffmpeg -nostdin -loglevel error -y -stream_loop 40 -i manifests/demo-assets/lesson-01.wav -t 120 $wav
declare -A JOB=( [small]="384*256 32 16 False" [medium]="688*368 48 12 True" [heavy]="720*1280 48 4 True" )
# Neighbours render long enough to outlast any probe (their clips x 4).
declare -A LONG=( [small]="384*256 32 64 False" [medium]="688*368 48 48 True" [heavy]="720*1280 48 16 True" )
run() {  # name size frames clips online -> the report's JSON line
  set -- $2
  python3 renderers/synthetic-dit/synthetic_dit.py --size "$1" --infer_frames "$2" --num_clip "$3" --online_decode "$4" \
    --audio $wav --output "/tmp/beside-$RANDOM.mp4" 2>/dev/null | tail -1
}
for probe in small medium heavy; do
  for hood in none small medium heavy; do
    pids=()
    if [ "$hood" != none ]; then
      for i in 1 2 3; do run n "${LONG[$hood]}" > /dev/null & pids+=($!); done
      sleep 8
    fi
    r=$(run p "${JOB[$probe]}")
    for p in "${pids[@]}"; do pkill -P "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    python3 -c "
import json, sys
r = json.loads(sys.argv[1])
where = 'alone' if sys.argv[3] == 'none' else 'beside 3 ' + sys.argv[3]
print(f'probe {sys.argv[2]:6s} {where:15s}: start-up {r[\"startup_s\"] + r[\"load_s\"]:6.2f} s  render {r[\"render_s\"]:6.2f} s  whole {r[\"seconds\"]:6.2f} s')
" "$r" "$probe" "$hood" 2>/dev/null || echo "probe $probe beside 3 $hood: no report ($r)"
  done
done
