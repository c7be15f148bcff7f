#!/usr/bin/env python3
"""A test renderer that fails on request, for avatar-batch's tests and chaos harness.

Usage: fake_renderer.py --output PATH --clip ID --mode MODE [--ledger FILE] [--argv-dump FILE]
                        [--sleep S] [--online-decode True|False] [--audio PATH] [--seconds S]

Modes:
  ok            write a small output (an mp4 through ffmpeg when --ffmpeg is given, else bytes)
  oom           print a real PyTorch OOM message and exit 1 (unless --online-decode True: then ok)
  oom-always    OOM whatever the settings
  crash         exit 3
  crash-once    crash on the first invocation for this clip (per ledger), then ok
  hang          sleep forever
  ignore-term   ignore SIGTERM and sleep forever
  grandchild    fork a grandchild that sleeps long, then exit 0 after writing the output
  no-output     exit 0 without writing anything
  empty         exit 0 with an empty output
  silent        write an mp4 with no audio stream (needs ffmpeg)
  flood         write --flood-mb MB to stderr, then ok
  outside       write a file beside the output (outside its output path), then ok
Every invocation appends one JSON line to --ledger (clip, pid, mode, started, ended).
With --model (and --size, --infer-frames, --num-clip, --online-decode) it stands in for a GPU renderer in
calibration tests: 0.3 s of start-up, then CPU work that grows with the frames, and a report of a peak that grows
with the frame's pixels, the frames and (offline) the clips: 2 GB + 0.25 GB per megapixel-frame of one clip
+ 0.004 GB per megapixel-frame of each offline clip (its decoded frames; 0.3 GB online).
$FAKE_SLOW_GPUS ("virtual-1:3,virtual-2:2") makes that work take so many times as long on the GPU of that UUID
($AVATAR_BATCH_GPU_UUID): a slower card of a mixed inventory.
"""
import argparse, json, os, signal, subprocess, sys, time

p = argparse.ArgumentParser()
p.add_argument("--output", required=True)
p.add_argument("--clip", required=True)
p.add_argument("--mode", default="ok")
p.add_argument("--ledger")
p.add_argument("--argv-dump")
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--online-decode", default="False")
p.add_argument("--audio")
p.add_argument("--image")
p.add_argument("--prompt")
p.add_argument("--ffmpeg", action="store_true")
p.add_argument("--flood-mb", type=int, default=1)
p.add_argument("--output-mb", type=int, default=0, help="make the output this many MB (disk-full tests)")
p.add_argument("--report", action="store_true")
p.add_argument("--model", action="store_true", help="behave like a GPU renderer: peak memory and time grow with size, frames and clips")
p.add_argument("--size", default="384*256")
p.add_argument("--infer-frames", type=int, default=48)
p.add_argument("--num-clip", type=int, default=1)
a = p.parse_args()

started = time.time()


def ledger(event, **extra):
    if not a.ledger:
        return
    rec = {"clip": a.clip, "pid": os.getpid(), "mode": a.mode, "event": event, "t": time.time(),
           "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    rec.update(extra)
    with open(a.ledger, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


if a.argv_dump:
    with open(a.argv_dump, "w") as f:
        json.dump(sys.argv, f)

ledger("start")


def write_output():
    if a.ffmpeg:
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=64x64:r=25",
               "-i", a.audio, "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mp4", a.output]
        subprocess.run(cmd, check=True)
    else:
        with open(a.output, "wb") as f:
            f.write(b"fake video for " + a.clip.encode() + b"\n" * 64)
            for _ in range(a.output_mb):
                f.write(b"\0" * (1 << 20))


def oom():
    sys.stderr.write("Traceback (most recent call last):\n  File \"render.py\", line 1, in <module>\n")
    sys.stderr.write("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 12.00 GiB. GPU 0 has a total capacity "
                     "of 79.18 GiB of which 3.66 GiB is free. Including non-PyTorch memory, this process has 20.50 GiB "
                     "memory in use. Of the allocated memory 18.00 GiB is allocated by PyTorch.\n")
    sys.stderr.flush()
    ledger("oom")
    sys.exit(1)


if a.sleep:
    time.sleep(a.sleep)

mode = a.mode
if mode == "crash-once" and a.ledger:
    with open(a.ledger) as f:
        starts = [json.loads(l) for l in f if l.strip()]
    mode = "crash" if sum(1 for r in starts if r["clip"] == a.clip and r["event"] == "start") <= 1 else "ok"

if mode == "oom" and a.online_decode != "True":
    oom()
elif mode == "oom-always":
    oom()
elif mode == "nul-crash":
    sys.stderr.write("renderer: before\0after the NUL\n")
    sys.stderr.flush()
    sys.exit(3)
elif mode == "crash":
    sys.stderr.write("renderer: something broke\n")
    ledger("crash")
    sys.exit(3)
elif mode == "hang":
    while True:
        time.sleep(1)
elif mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)
elif mode == "grandchild":
    if os.fork() == 0:
        os.setsid() if os.environ.get("FAKE_ESCAPE_GROUP") else None
        time.sleep(3600)
        os._exit(0)
elif mode == "no-output":
    ledger("end")
    sys.exit(0)
elif mode == "empty":
    open(a.output, "wb").close()
    ledger("end")
    sys.exit(0)
elif mode == "silent":
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=64x64:r=25:d=2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-f", "mp4", a.output], check=True)
    ledger("end")
    sys.exit(0)
elif mode == "flood":
    chunk = "x" * 1023 + "\n"
    for _ in range(a.flood_mb * 1024):
        sys.stderr.write(chunk)
elif mode == "outside":
    try:
        with open(os.path.join(os.path.dirname(a.output), "escaped-" + a.clip), "w") as f:
            f.write("escaped")
    except OSError:
        pass

peak = 1.5
rendering_from = None
if a.model:
    w, h = (int(v) for v in a.size.split("*"))
    online = a.online_decode == "True"
    time.sleep(0.3)  # the start-up: the part a warm worker pays once
    rendering_from = time.time()
    # CPU work: co-located probes contend for the cores as GPU jobs contend for the card.
    slow = dict(e.rsplit(":", 1) for e in os.environ.get("FAKE_SLOW_GPUS", "").split(",") if ":" in e)
    factor = float(slow.get(os.environ.get("AVATAR_BATCH_GPU_UUID", ""), 1))
    work_until = time.time() + factor * (0.1 + 0.004 * a.infer_frames * a.num_clip * (w * h) / (384 * 256))
    n = 0
    while time.time() < work_until:
        n += 1
    peak = 2 + 0.25 * w * h * a.infer_frames / 1e6 + (0.3 if online else 0.004 * w * h * a.infer_frames / 1e6 * a.num_clip)
    # A card of $FAKE_GPU_GB: a peak above it is a real-looking OOM.
    if os.environ.get("FAKE_GPU_GB") and peak > float(os.environ["FAKE_GPU_GB"]):
        sys.stderr.write("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate %.2f GiB. GPU 0 has a total capacity of %s GiB "
                         "of which 0.10 GiB is free. Including non-PyTorch memory, this process has 2.00 GiB memory in use.\n"
                         % (peak - 2, os.environ["FAKE_GPU_GB"]))
        sys.exit(1)
write_output()
if a.report and os.environ.get("AVATAR_BATCH_REPORT"):
    with open(os.environ["AVATAR_BATCH_REPORT"], "w") as f:
        report = {"peak_memory_gb": round(peak, 3), "seconds": time.time() - started}
        if rendering_from is not None:
            report["render_seconds"] = time.time() - rendering_from
        json.dump(report, f)
ledger("end")
