#!/usr/bin/env python3
"""A warm worker for avatar-batch's tests: speaks the worker protocol (docs/workers.md) and fails on request.

Usage: fake_worker.py [--ledger FILE] [--load-seconds S] [--fault FAULT] [--ffmpeg] [--resident-gb GB]

Load faults (--fault, or $FAKE_WORKER_FAULT; with a ledger, "-once" variants fault only the first worker):
  never-ready    connect, then never say ready
  die-loading    exit 4 before saying ready
  garbage-ready  send a line that is not JSON instead of ready
Request faults: the request's extra_args carry --mode MODE (and --sleep S):
  ok          write the output, then done (an mp4 through ffmpeg with --ffmpeg, else bytes)
  oom         print a real PyTorch OOM message and answer failed/oom (ok when online_decode is true)
  fail        answer failed, oom false
  die         exit 3 mid-request
  die-once    die on the first request for this clip (per ledger), then ok
  hang        never answer
  garbage     write a line that is not JSON to the socket
  no-output   answer done without writing anything
Every event appends one JSON line to --ledger: load, ready, render, answer, exit, with the pid and the clip.
With --model a request behaves like fake_renderer.py --model without its start-up (the worker loaded once): CPU work
that grows with the frames, and a peak (reported in done) of 2 GB + 0.25 GB per megapixel-frame of one clip + 0.004 GB
per megapixel-frame of each offline clip (0.3 GB online); the load is --load-seconds, and --first-request-seconds is
added to the first request alone (a fresh worker's one-time costs).
"""
import argparse, json, os, socket, subprocess, sys, time

p = argparse.ArgumentParser()
p.add_argument("--ledger")
p.add_argument("--load-seconds", type=float, default=0.0)
p.add_argument("--fault", default=os.environ.get("FAKE_WORKER_FAULT", ""))
p.add_argument("--ffmpeg", action="store_true")
p.add_argument("--resident-gb", type=float, default=4.0)
p.add_argument("--offload", default="")
p.add_argument("--model", action="store_true")
p.add_argument("--first-request-seconds", type=float, default=0.0,
               help="extra time the worker's first request takes (a fresh worker's one-time costs: kernels loaded on first use)")
a = p.parse_args()


def ledger(event, **extra):
    if not a.ledger:
        return
    rec = {"event": event, "pid": os.getpid(), "t": time.time(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
           "worker": os.environ.get("AVATAR_BATCH_WORKER_ID"), "offload": a.offload}
    rec.update(extra)
    with open(a.ledger, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def ledger_lines():
    if not a.ledger or not os.path.exists(a.ledger):
        return []
    with open(a.ledger) as f:
        return [json.loads(l) for l in f if l.strip()]


fault = a.fault
if fault.endswith("-once"):
    # Only the first worker of the batch faults.
    fault = fault[:-5] if sum(1 for r in ledger_lines() if r["event"] == "load") == 0 else ""

ledger("load")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(os.environ["AVATAR_BATCH_WORKER_SOCKET"])
stream = sock.makefile("rwb", buffering=0)


def say(obj):
    stream.write((json.dumps(obj) + "\n").encode())


def hang():
    while True:
        time.sleep(1)


print(f"fake worker {os.getpid()}: loading for {a.load_seconds} s", flush=True)
time.sleep(a.load_seconds)
if fault == "die-loading":
    print("fake worker: dying while loading", file=sys.stderr, flush=True)
    sys.exit(4)
if fault == "never-ready":
    hang()
if fault == "garbage-ready":
    stream.write(b"Loading checkpoint shards: 100%|##########|\n")
    hang()
say({"event": "ready", "pid": os.getpid(), "load_seconds": a.load_seconds, "resident_gb": a.resident_gb})
ledger("ready")


def mode_of(extra):
    mode, sleep = "ok", 0.0
    for i, arg in enumerate(extra):
        if arg == "--mode" and i + 1 < len(extra):
            mode = extra[i + 1]
        if arg == "--sleep" and i + 1 < len(extra):
            sleep = float(extra[i + 1])
    return mode, sleep


def write_output(path, clip, audio):
    if a.ffmpeg:
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=64x64:r=25",
                        "-i", audio, "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mp4", path], check=True)
    else:
        with open(path, "wb") as f:
            f.write(b"fake warm video for " + clip.encode() + b"\n" * 64)


for raw in stream:
    line = raw.decode().strip()
    if not line:
        continue
    req = json.loads(line)
    if req.get("request") == "exit":
        ledger("exit")
        sys.exit(0)
    job, settings = req["job"], req["settings"]
    clip = settings.get("clip_id", job)
    mode, sleep = mode_of(settings.get("extra_args", []))
    ledger("render", clip=clip, mode=mode, attempt=req["attempt"])
    print(f"fake worker {os.getpid()}: rendering {clip} ({mode})", flush=True)
    if mode == "die-once":
        renders = sum(1 for r in ledger_lines() if r["event"] == "render" and r.get("clip") == clip)
        mode = "die" if renders <= 1 else "ok"
    started = time.time()  # the request's time includes its --sleep, as a real worker's generate time would
    time.sleep(sleep)
    if a.first_request_seconds > 0:
        time.sleep(a.first_request_seconds)
        a.first_request_seconds = 0
    if mode == "oom" and not settings.get("online_decode"):
        msg = ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 12.00 GiB. GPU 0 has a total capacity of 79.18 GiB "
               "of which 3.66 GiB is free. Including non-PyTorch memory, this process has 20.50 GiB memory in use.")
        print(msg, file=sys.stderr, flush=True)
        say({"event": "failed", "job": job, "error": msg, "oom": True})
        ledger("answer", clip=clip, answer="oom")
    elif mode == "fail":
        say({"event": "failed", "job": job, "error": "ValueError: bad prompt", "oom": False})
        ledger("answer", clip=clip, answer="failed")
    elif mode == "die":
        print("fake worker: dying mid-request", file=sys.stderr, flush=True)
        sys.exit(3)
    elif mode == "hang":
        hang()
    elif mode == "garbage":
        stream.write(b"\x00\xffnot json at all\n")
        hang()
    elif mode == "no-output":
        say({"event": "done", "job": job})
        ledger("answer", clip=clip, answer="done")
    else:
        peak = a.resident_gb + 1.5
        if a.model:
            w, h = (int(v) for v in str(settings["size"]).split("*"))
            frames, clips, online = int(settings["infer_frames"]), int(settings["num_clip"]), bool(settings.get("online_decode"))
            work_until = time.time() + 0.1 + 0.004 * frames * clips * (w * h) / (384 * 256)
            while time.time() < work_until:
                pass
            peak = 2 + 0.25 * w * h * frames / 1e6 + (0.3 if online else 0.004 * w * h * frames / 1e6 * clips)
        write_output(req["output"], clip, settings["audio"])
        say({"event": "done", "job": job, "peak_memory_gb": round(peak, 3), "seconds": round(time.time() - started, 3)})
        ledger("answer", clip=clip, answer="done")
ledger("exit", why="socket closed")
