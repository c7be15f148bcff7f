#!/usr/bin/env bash
# Does a cold start-up share the GPU? k identical synthetic-dit jobs started together on one GPU, twice each:
#   start-up only: a render of 8 frames of one clip at 384*256 (what is left is the interpreter, building the model,
#   moving it to the card): T0(k);
#   a whole job (SIZE FRAMES CLIPS, online decode, as bench/gpu/sharing.sh): T(k).
# Prints S(k) of whole jobs, k x T(1) / T(k), and of the render alone, k x (T(1) - T0(1)) / (T(k) - T0(k)), and how
# much k start-ups together slow each other, T0(k) / T0(1). Usage (GPU host, ffmpeg on PATH):
#   bash bench/gpu/startup-sharing.sh [SIZE] [FRAMES] [CLIPS]
set -u
size=${1:-688*368}; frames=${2:-48}; clips=${3:-12}
wav=/tmp/startup-sharing.wav
ffmpeg -nostdin -loglevel error -y -stream_loop 20 -i manifests/demo-assets/lesson-01.wav -t 60 $wav
job() { python3 renderers/synthetic-dit/synthetic_dit.py --size "$2" --infer_frames "$3" --num_clip "$4" \
          --online_decode True --audio $wav --output /tmp/startup-sharing-$1.mp4 > /dev/null 2>&1; }
together() {  # k size frames clips: wall seconds of k jobs started at once, the mean of two tries
  local k=$1 total=0 s t
  for try in 1 2; do
    s=$(date +%s.%N)
    for i in $(seq "$k"); do job "$i" "$2" "$3" "$4" & done
    wait
    t=$(python3 -c "import time; print(time.time() - $s)")
    total=$(python3 -c "print($total + $t)")
  done
  python3 -c "print($total / 2)"
}
declare -A T0 T
for k in 1 2 3 4; do
  T0[$k]=$(together "$k" "384*256" 8 1)
  T[$k]=$(together "$k" "$size" "$frames" "$clips")
  python3 -c "
k, t0, t, t01, t1 = $k, ${T0[$k]}, ${T[$k]}, ${T0[1]}, ${T[1]}
print(f'k={k}: start-up only {t0:.2f} s (x{t0 / t01:.2f} of alone), whole job {t:.2f} s; S({k}) whole {k * t1 / t:.2f}, of the render {k * (t1 - t01) / (t - t0):.2f}')"
done
