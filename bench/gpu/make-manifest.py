#!/usr/bin/env python3
"""Writes the GPU proof manifest: N synthetic-dit clips of mixed sizes, clip counts and decode modes.

Usage: make-manifest.py OUT_DIR N [--repeat R] [--steps S]
Creates OUT_DIR/audio.wav (60 s, from the demo's speech) and OUT_DIR/gpu-proof.yaml. Deliberately includes
720*1280 clips decoded offline whose float32 frames outgrow what the profile predicts: they OOM first and
are recovered by the ladder (isolate, then online decode).
"""
import os, subprocess, sys

out, n = sys.argv[1], int(sys.argv[2])
repeat = sys.argv[sys.argv.index("--repeat") + 1] if "--repeat" in sys.argv else "2"  # matches the profile's calibration
steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 4  # the profile's default
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.makedirs(out, exist_ok=True)
wav = os.path.join(out, "audio.wav")
subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", "20", "-i",
                os.path.join(root, "manifests/demo-assets/lesson-01.wav"), "-t", "60", wav], check=True)
# (size, infer_frames, num_clip, online_decode)
mix = [("384*256", 32, 16, "false"), ("688*368", 48, 10, "false"), ("704*384", 48, 8, "false"), ("384*256", 32, 20, "true"),
       ("688*368", 48, 12, "true"), ("720*1280", 48, 4, "true")]
# 720*1280 decoded offline keeps 0.49 GB of float32 frames per clip on the GPU, where the profile (like Live
# Avatar's article) predicts 0.015: 24 clips really need ~42 GB, predicted ~34 GB, so the two get packed
# together and run out of memory there.
big = [("720*1280", 48, 24, "false"), ("720*1280", 48, 20, "false")]
lines = [f"""version: 1
name: gpu-proof
output_dir: {out}/videos
renderer: synthetic-dit
gpus: auto
retry:
  max_attempts: 4
  on_oom: [isolate, {{online_decode: true}}, {{offload_model: true}}]
defaults:
  image: {root}/manifests/demo-assets/teacher.png
  audio: {wav}
  prompt: "A teacher speaking to the camera"
  sample_steps: {steps}
  extra_args: [--repeat, "{repeat}"]
clips:"""]
clips = big[: max(0, min(2, n // 12))]
i = 0
while len(clips) < n:
    clips.append(mix[i % len(mix)])
    i += 1
for k, (size, frames, num, online) in enumerate(clips):
    lines.append(f"  - {{id: clip-{k:03d}, size: \"{size}\", infer_frames: {frames}, num_clip: {num}, online_decode: {online}}}")
path = os.path.join(out, "gpu-proof.yaml")
with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
print(path)
