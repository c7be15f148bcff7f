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
  * $AVATAR_BATCH_REPORT: peak GPU memory (the allocator's reserved peak plus the CUDA context), durations
    (render_seconds: the clip's own work once loaded, what a warm request repeats), the device count and UUID
    this process saw.
Over-packed GPUs raise real torch.OutOfMemoryError (exit 1), exactly as the renderer it stands in for.

With --worker it is a warm worker (docs/workers.md): it loads once, then renders each request sent over
$AVATAR_BATCH_WORKER_SOCKET. --weights-file (or $SYNTHETIC_DIT_WEIGHTS_FILE) reads the weights from a local file
instead of making them in memory, so a load costs what a real checkpoint's does (Live Avatar's is about 47 GB).
"""
import argparse, json, math, os, shutil, socket, subprocess, sys, time

t_start = time.time()


def job_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--size", required=True)
    p.add_argument("--num_clip", type=int, required=True)
    p.add_argument("--infer_frames", type=int, default=48)
    p.add_argument("--sample_steps", type=int, default=4)
    p.add_argument("--online_decode", default="False")
    p.add_argument("--seed", type=int, default=420)
    p.add_argument("--audio", required=True)
    p.add_argument("--audio_seconds", type=lambda v: float(v) if v else 0.0, default=0.0,
                   help="video frames stop at the audio's end, as Live Avatar's num_clip is capped")
    p.add_argument("--image")
    p.add_argument("--prompt", default="")
    p.add_argument("--output", required=True)
    p.add_argument("--repeat", type=int, default=2, help="block passes per sample step (compute per clip)")
    return p


def load_parser():
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--offload_model", default="False")
    p.add_argument("--weights-gb", type=float, default=8.0)
    p.add_argument("--weights-file", default=os.environ.get("SYNTHETIC_DIT_WEIGHTS_FILE", ""),
                   help="read the weights from this local file (its size is the weights' size), as a real model load does; "
                        "also $SYNTHETIC_DIT_WEIGHTS_FILE")
    p.add_argument("--layers", type=int, default=40)
    p.add_argument("--dim", type=int, default=3072)
    p.add_argument("--worker", action="store_true", help="serve render requests over $AVATAR_BATCH_WORKER_SOCKET (docs/workers.md)")
    return p


lopts, rest = load_parser().parse_known_args()

import torch  # noqa: E402  (import time is part of the start-up being modelled)

t_import = time.time()
offload = lopts.offload_model == "True"
dev = torch.device("cuda")
props = torch.cuda.get_device_properties(0)
bf16 = torch.bfloat16
CONTEXT_GB = 0.5  # the CUDA context, which the allocator does not count


def read_weights(path):
    """Streams a weights file into one GPU tensor through a pinned buffer, as a checkpoint loader does."""
    size = os.path.getsize(path) // 2 * 2
    target = torch.empty(size, dtype=torch.uint8, device=dev) if not offload else torch.empty(size, dtype=torch.uint8)
    chunk = 256 << 20
    buf = torch.empty(chunk, dtype=torch.uint8).pin_memory()
    view = memoryview(buf.numpy())
    with open(path, "rb", buffering=0) as f:
        off = 0
        while off < size:
            n = f.readinto(view[: min(chunk, size - off)])
            if not n:
                break
            target[off:off + n].copy_(buf[:n])
            off += n
    return target


# Weights: transformer blocks used in compute, plus the rest of the model as one resident tensor.
blocks = [torch.randn(lopts.dim, lopts.dim, dtype=bf16, device=dev) * 0.02 for _ in range(lopts.layers)]
block_bytes = lopts.layers * lopts.dim * lopts.dim * 2
if lopts.weights_file:
    rest_weights = read_weights(lopts.weights_file)
else:
    others = max(int(lopts.weights_gb * 2**30) - block_bytes, 0) // 2
    rest_weights = torch.empty(others, dtype=bf16, pin_memory=False) if offload else torch.zeros(others, dtype=bf16, device=dev)
torch.cuda.synchronize()
t_loaded = time.time()
ffmpeg = os.environ.get("AVATAR_BATCH_FFMPEG") or shutil.which("ffmpeg") or "ffmpeg"


def render(a):
    """One job: denoise num_clip clips, decode, encode, mux. Returns the report."""
    t0 = time.time()
    torch.cuda.reset_peak_memory_stats()
    w, h = (int(v) for v in a.size.replace("x", "*").split("*"))
    online = a.online_decode == "True"
    torch.manual_seed(a.seed if a.seed >= 0 else int(time.time()))
    lat_frames = 1 + (a.infer_frames - 1) // 4
    tokens = math.ceil(h / 16) * math.ceil(w / 16) * lat_frames
    kv = torch.empty((lopts.layers, 2, tokens, lopts.dim), dtype=bf16, device=dev)
    tmp_video = a.output + ".video.mp4"
    enc = subprocess.Popen([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                            "-s", f"{w}x{h}", "-r", "25", "-i", "-", "-c:v", "libx264", "-preset", "ultrafast",
                            "-pix_fmt", "yuv420p", "-f", "mp4", tmp_video], stdin=subprocess.PIPE)
    budget = [math.ceil(a.audio_seconds * 25) if a.audio_seconds > 0 else None]

    def emit(frames):
        # frames: (F, 3, H, W) float32 in [0, 1] on the GPU; nothing past the audio's end is written.
        if budget[0] is not None:
            frames = frames[:max(budget[0], 0)]
            budget[0] -= frames.shape[0]
        if frames.shape[0] == 0:
            return
        rgb = (frames.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        enc.stdin.write(rgb.tobytes())

    kept = []
    try:
        for clip in range(a.num_clip):
            x = torch.randn(tokens, lopts.dim, dtype=bf16, device=dev)
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
        torch.cuda.synchronize()
        t_denoised = time.time()
        for frames in kept:
            emit(frames)
        torch.cuda.synchronize()
        t_rendered = time.time()
        peak_gb = torch.cuda.max_memory_reserved() / 2**30 + CONTEXT_GB
    finally:
        del kept, kv
        enc.stdin.close()
        enc.wait()
    if enc.returncode != 0:
        raise RuntimeError("synthetic-dit: video encoding failed")
    mux = subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", tmp_video, "-i", a.audio, "-map", "0:v", "-map", "1:a",
                          "-c:v", "copy", "-c:a", "aac", "-shortest", "-f", "mp4", a.output])
    os.remove(tmp_video)
    if mux.returncode != 0:
        raise RuntimeError("synthetic-dit: muxing the audio failed")
    # render_seconds: this clip's own work (a warm request's time); the process's time less it is its start-up.
    own = round(time.time() - t0, 3)
    return {"peak_memory_gb": round(peak_gb, 3), "render_s": round(t_rendered - t0, 3), "denoise_s": round(t_denoised - t0, 3), "seconds": own, "render_seconds": own,
            "tokens": tokens, "device_count": torch.cuda.device_count(), "device_uuid": "GPU-" + str(props.uuid),
            "device_name": props.name, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def serve():
    """Worker mode: say ready, then one job per render request, until exit or the socket closes."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ["AVATAR_BATCH_WORKER_SOCKET"])
    stream = sock.makefile("rwb", buffering=0)

    def say(obj):
        stream.write((json.dumps(obj) + "\n").encode())

    resident = torch.cuda.memory_reserved() / 2**30 + CONTEXT_GB
    say({"event": "ready", "pid": os.getpid(), "load_seconds": round(time.time() - t_start, 3), "resident_gb": round(resident, 3)})
    print(f"synthetic-dit worker: loaded in {time.time() - t_start:.1f} s, {resident:.1f} GB resident", flush=True)
    for raw in stream:
        if not raw.strip():
            continue
        req = json.loads(raw)
        if req.get("request") == "exit":
            return
        st = req["settings"]
        argv = ["--size", st["size"], "--num_clip", str(st["num_clip"]), "--infer_frames", str(st["infer_frames"]),
                "--sample_steps", str(st["sample_steps"]), "--online_decode", "True" if st["online_decode"] else "False",
                "--seed", str(st["seed"]), "--audio", st["audio"], "--audio_seconds", str(st.get("audio_seconds", "")),
                "--output", req["output"]] + list(st.get("extra_args", []))
        try:
            a, _ = job_parser().parse_known_args(argv)
            r = render(a)
            print(json.dumps({"job": req["job"], **r}), flush=True)
            say({"event": "done", "job": req["job"], "peak_memory_gb": r["peak_memory_gb"], "seconds": r["seconds"]})
        except torch.OutOfMemoryError as e:
            print(f"torch.OutOfMemoryError: {e}", file=sys.stderr, flush=True)
            say({"event": "failed", "job": req["job"], "error": f"torch.OutOfMemoryError: {e}", "oom": True})
        except Exception as e:  # noqa: BLE001  (any failure of one clip is reported, and the worker goes on)
            print(f"synthetic-dit worker: {req['job']} failed: {e!r}", file=sys.stderr, flush=True)
            say({"event": "failed", "job": req["job"], "error": repr(e), "oom": False})
        finally:
            torch.cuda.empty_cache()


if lopts.worker:
    serve()
    sys.exit(0)

a = job_parser().parse_args(rest)
report = render(a)
report.update({"seconds": round(time.time() - t_start, 3), "startup_s": round(t_import - t_start, 3),
               "load_s": round(t_loaded - t_import, 3)})
if os.environ.get("AVATAR_BATCH_REPORT"):
    with open(os.environ["AVATAR_BATCH_REPORT"], "w") as f:
        json.dump(report, f)
print(json.dumps(report))
