#!/usr/bin/env python3
"""Why calibrate's pairs read a lower S(2) than a batch's neighbours (docs/benchmarks.md, "Pairs in phase").

Two synthetic-dit warm workers on one GPU, driven here over the worker protocol (docs/workers.md) without
avatar-batch, so each request starts exactly when asked. Every scenario is a pair of requests whose second starts
`delay` (a fraction of the first's time alone) after the first; delay 0 is calibrate's way, a later one is a batch's
steady state, where a new job joins a neighbour already half way through.

  python3 bench/gpu/phase-probe.py OUT_DIR AUDIO          # on the GPU host, ffmpeg on PATH
  python3 bench/gpu/phase-probe.py --report OUT_DIR       # here, from the recorded phase.jsonl

Each request's line in phase.jsonl: scenario, worker, mode, clips, sent and done (this driver's clock), and the
worker's report (render_s, denoise_s: the GPU part; the rest of `seconds` is encoding and muxing).
S(2) of one request by its overlap: with W its time alone, T its time and O the seconds both ran,
W = (T - O) + O * S / 2, so S = 2 * (W - T + O) / O.
"""
import json, os, socket, subprocess, sys, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
DIT = os.environ.get("PHASE_PROBE_RENDERER") or os.path.join(HERE, "..", "..", "renderers", "synthetic-dit", "synthetic_dit.py")
SIZE, FRAMES, STEPS = "688*368", 48, 4


class Worker:
    def __init__(self, name, out):
        self.name = name
        path = f"/tmp/phase-{name}.sock"
        if os.path.exists(path):
            os.remove(path)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        env = dict(os.environ, AVATAR_BATCH_WORKER_SOCKET=path)
        self.log = open(os.path.join(out, f"worker-{name}.out"), "w")
        self.proc = subprocess.Popen([sys.executable, DIT, "--worker"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        conn, _ = srv.accept()
        self.stream = conn.makefile("rwb", buffering=0)
        ready = json.loads(self.stream.readline())
        assert ready["event"] == "ready", ready
        self.n = 0

    def render(self, clips, online, audio, out):
        self.n += 1
        job = f"{self.name}-{self.n}"
        settings = {"size": SIZE, "num_clip": clips, "infer_frames": FRAMES, "sample_steps": STEPS,
                    "online_decode": online, "seed": 420, "audio": audio}
        sent = time.time()
        self.stream.write((json.dumps({"request": "render", "job": job, "attempt": 1,
                                       "output": os.path.join(out, job + ".mp4"), "settings": settings}) + "\n").encode())
        done = json.loads(self.stream.readline())
        assert done["event"] == "done", done
        return job, sent, time.time()

    def close(self):
        self.stream.write(b'{"request": "exit"}\n')
        self.proc.wait()
        self.log.close()


def reports(out):
    """The worker's own report line of each job, by job name."""
    found = {}
    for name in os.listdir(out):
        if name.startswith("worker-") and name.endswith(".out"):
            for line in open(os.path.join(out, name)):
                if line.startswith("{"):
                    r = json.loads(line)
                    found[r["job"]] = r
    return found


def run(out, audio):
    a, b = Worker("a", out), Worker("b", out)
    rows = []

    def one(w, scenario, mode, clips, wait, sink):
        time.sleep(wait)
        job, sent, done = w.render(clips, mode == "on", audio, out)
        sink.append({"scenario": scenario, "worker": w.name, "job": job, "mode": mode, "clips": clips,
                     "sent": sent, "done": done})

    # Warm-ups: a fresh worker's first request costs more (docs/calibration.md).
    for w in (a, b):
        one(w, "warmup", "off", 7, 0, [])
        one(w, "warmup", "on", 7, 0, [])
    alone = {}
    for rep in (1, 2):
        for w in (a, b):
            for mode in ("off", "on"):
                for clips in (7, 24):
                    sink = []
                    one(w, f"alone{rep}", mode, clips, 0, sink)
                    rows += sink
                    alone.setdefault((mode, clips), []).append(sink[0]["done"] - sink[0]["sent"])
    mean = {k: sum(v) / len(v) for k, v in alone.items()}
    for clips in (7, 24):
        for pair in (("off", "off"), ("on", "on"), ("off", "on")):
            for frac in (0.0, 0.5):
                for rep in (1, 2) if frac == 0.0 else (1,):
                    sink = []
                    wait = frac * mean[(pair[0], clips)]
                    t1 = threading.Thread(target=one, args=(a, f"{pair[0]}+{pair[1]} x{clips} at {frac}", pair[0], clips, 0, sink))
                    t2 = threading.Thread(target=one, args=(b, f"{pair[0]}+{pair[1]} x{clips} at {frac}", pair[1], clips, wait, sink))
                    t1.start(); t2.start(); t1.join(); t2.join()
                    for r in sink:
                        r["rep"] = rep
                    rows += sink
    a.close(); b.close()
    with open(os.path.join(out, "phase.jsonl"), "w") as f:
        rep = reports(out)
        for r in rows:
            r["report"] = rep.get(r["job"])
            f.write(json.dumps(r) + "\n")


def report(out):
    rows = [json.loads(l) for l in open(os.path.join(out, "phase.jsonl")) if l.strip()]
    alone = {}
    for r in rows:
        if r["scenario"].startswith("alone"):
            alone.setdefault((r["mode"], r["clips"]), []).append(r)
    print("alone (mean of 4: two workers, twice): wall / GPU part (denoise_s) / the rest, seconds")
    base = {}
    for k, v in sorted(alone.items()):
        w = sum(r["done"] - r["sent"] for r in v) / len(v)
        d = sum(r["report"]["denoise_s"] for r in v) / len(v)
        base[k] = (w, d)
        spread = max(r["done"] - r["sent"] for r in v) / min(r["done"] - r["sent"] for r in v) - 1
        print(f"  {k[0]:3s} x{k[1]:<3d} {w:6.2f} / {d:6.2f} / {w - d:5.2f}   spread {spread * 100:4.1f}%")
    print("pairs: each request's slow-down (wall, GPU part) and S(2) by its overlap")
    groups = {}
    for r in rows:
        if "+" in r["scenario"]:
            groups.setdefault((r["scenario"], r.get("rep", 1)), []).append(r)
    for (scn, rep), pair in groups.items():
        o = max(0.0, min(p["done"] for p in pair) - max(p["sent"] for p in pair))
        parts = []
        for p in sorted(pair, key=lambda p: p["worker"]):
            w, d = base[(p["mode"], p["clips"])]
            t = p["done"] - p["sent"]
            s = 2 * (w - t + o) / o if o > 0 else float("nan")
            parts.append(f"{p['mode']} x{t / w:4.2f} gpu x{p['report']['denoise_s'] / d:4.2f} S {s:4.2f}")
        print(f"  {scn:22s} #{rep} overlap {o:5.2f} s | " + " | ".join(parts))


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(sys.argv[2])
    else:
        os.makedirs(sys.argv[1], exist_ok=True)
        run(sys.argv[1], sys.argv[2])
        report(sys.argv[1])
