#!/usr/bin/env python3
"""synthetic-dit: a DiT-shaped GPU workload with Live Avatar's memory behaviour, avatar-batch's reference GPU job.

What it does, like Live Avatar on one GPU:
  * start-up: Python, torch import, CUDA init;
  * weight load: --weights-gb of bf16 tensors on the GPU (transformer blocks plus the rest);
  * per clip: --sample-steps denoising passes of --layers transformer blocks over the latent tokens,
    tokens = ceil(h/16) * ceil(w/16) * (1 + (infer_frames - 1) // 4), with a KV cache per block;
  * decode: infer_frames float32 RGB frames per clip. Offline decode keeps every clip's frames on the GPU
    until the end (memory grows with num_clip); online decode moves each clip to the host as it is made;
  * output: an mp4 (libx264 via ffmpeg) with the clip's audio muxed in, at 25 fps;
  * $AVATAR_BATCH_REPORT: peak GPU memory (the allocator's reserved peak plus the CUDA context), durations,
    the device count and UUID this process saw.
Over-packed GPUs raise real torch.OutOfMemoryError (exit 1), exactly as the renderer it stands in for.
"""
import argparse, json, math, os, shutil, subprocess, sys, time

t_start = time.time()
p = argparse.ArgumentParser()
p.add_argument("--size", required=True)
p.add_argument("--num_clip", type=int, required=True)
p.add_argument("--infer_frames", type=int, default=48)
p.add_argument("--sample_steps", type=int, default=4)
p.add_argument("--online_decode", default="False")
p.add_argument("--offload_model", default="False")
p.add_argument("--seed", type=int, default=420)
p.add_argument("--audio", required=True)
p.add_argument("--audio_seconds", type=lambda v: float(v) if v else 0.0, default=0.0, help="video frames stop at the audio's end, as Live Avatar's num_clip is capped")
p.add_argument("--image")
p.add_argument("--prompt", default="")
p.add_argument("--output", required=True)
p.add_argument("--weights-gb", type=float, default=8.0)
p.add_argument("--layers", type=int, default=40)
p.add_argument("--dim", type=int, default=3072)
p.add_argument("--repeat", type=int, default=2, help="block passes per sample step (compute per clip)")
a = p.parse_args()

import torch  # noqa: E402  (import time is part of the start-up being modelled)

t_import = time.time()
w, h = (int(v) for v in a.size.replace("x", "*").split("*"))
online = a.online_decode == "True"
offload = a.offload_model == "True"
torch.manual_seed(a.seed if a.seed >= 0 else int(time.time()))
dev = torch.device("cuda")
props = torch.cuda.get_device_properties(0)
bf16 = torch.bfloat16

# Weights: transformer blocks used in compute, plus the rest of the model as one resident tensor.
blocks = [torch.randn(a.dim, a.dim, dtype=bf16, device=dev) * 0.02 for _ in range(a.layers)]
block_bytes = a.layers * a.dim * a.dim * 2
rest = max(int(a.weights_gb * 2**30) - block_bytes, 0) // 2
if offload:
    rest_host = torch.empty(rest, dtype=bf16, pin_memory=False)  # offloaded: stays on the host
    rest_dev = None
else:
    rest_dev = torch.zeros(rest, dtype=bf16, device=dev)
torch.cuda.synchronize()
t_loaded = time.time()

lat_frames = 1 + (a.infer_frames - 1) // 4
tokens = math.ceil(h / 16) * math.ceil(w / 16) * lat_frames
kv = torch.empty((a.layers, 2, tokens, a.dim), dtype=bf16, device=dev)

ffmpeg = os.environ.get("AVATAR_BATCH_FFMPEG") or shutil.which("ffmpeg") or "ffmpeg"
tmp_video = a.output + ".video.mp4"
enc = subprocess.Popen([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                        "-s", f"{w}x{h}", "-r", "25", "-i", "-", "-c:v", "libx264", "-preset", "ultrafast",
                        "-pix_fmt", "yuv420p", "-f", "mp4", tmp_video], stdin=subprocess.PIPE)


frame_budget = math.ceil(a.audio_seconds * 25) if a.audio_seconds > 0 else None


def emit(frames):
    # frames: (F, 3, H, W) float32 in [0, 1] on the GPU; nothing past the audio's end is written.
    global frame_budget
    if frame_budget is not None:
        frames = frames[:max(frame_budget, 0)]
        frame_budget -= frames.shape[0]
    if frames.shape[0] == 0:
        return
    rgb = (frames.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    enc.stdin.write(rgb.tobytes())


kept = []
for clip in range(a.num_clip):
    x = torch.randn(tokens, a.dim, dtype=bf16, device=dev)
    for step in range(a.sample_steps):
        for _ in range(a.repeat):
            for l, wgt in enumerate(blocks):
                y = x @ wgt
                x = torch.nn.functional.gelu(y) * 0.5 + x * 0.5
                kv[l, step % 2].copy_(x)
    # Decode: a float32 frame stack the size of the video clip.
    level = x.float().mean().item()
    frames = torch.rand(a.infer_frames, 3, h, w, device=dev, dtype=torch.float32) * 0.2 + 0.4 + level * 0.0
    if online:
        emit(frames)
        del frames
    else:
        kept.append(frames)
if kept:
    for frames in kept:
        emit(frames)
torch.cuda.synchronize()
t_rendered = time.time()
peak_gb = (torch.cuda.max_memory_reserved() + 500 * 2**20) / 2**30  # + the CUDA context, which the allocator does not count
del kept, kv, blocks, rest_dev
enc.stdin.close()
if enc.wait() != 0:
    sys.exit("synthetic-dit: video encoding failed")
mux = subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", tmp_video, "-i", a.audio, "-map", "0:v", "-map", "1:a",
                      "-c:v", "copy", "-c:a", "aac", "-shortest", "-f", "mp4", a.output])
os.remove(tmp_video)
if mux.returncode != 0:
    sys.exit("synthetic-dit: muxing the audio failed")

report = {
    "peak_memory_gb": round(peak_gb, 3), "seconds": round(time.time() - t_start, 3),
    "startup_s": round(t_import - t_start, 3), "load_s": round(t_loaded - t_import, 3),
    "render_s": round(t_rendered - t_loaded, 3), "tokens": tokens, "device_count": torch.cuda.device_count(),
    "device_uuid": "GPU-" + str(props.uuid), "device_name": props.name,
    "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
}
if os.environ.get("AVATAR_BATCH_REPORT"):
    with open(os.environ["AVATAR_BATCH_REPORT"], "w") as f:
        json.dump(report, f)
print(json.dumps(report))
