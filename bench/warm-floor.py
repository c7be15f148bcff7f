#!/usr/bin/env python3
"""How well can one S(k) per k predict warm requests, knowing exactly when every other request ran?

For every recorded warm batch of the proof manifest (bench/results/h200-2026-12-01-*/warm*-status.json), each
request's time is predicted from its observed start, with its neighbours' observed intervals on the same GPU, by
processor sharing:
  - uniform: a request beside k-1 others renders at S(k)/k of its speed alone (what the product assumes);
  - intensity: each size has an intensity u (how much of the card it keeps busy alone); a request renders at
    1 / max(1, sum of the running requests' u) of its speed alone, so light neighbours cost less than heavy ones.
Each request type's time alone and the sharing figures are fitted to all batches at once (least squares on relative
error): an in-sample floor, better than anything fitted on earlier batches could do.

  python3 bench/warm-floor.py        (numpy and scipy; about 10 s)
"""
import glob
import json
import os

import numpy as np
from scipy.optimize import least_squares

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def load(path):
    reqs = []
    for job in json.load(open(path))["jobs"]:
        a = [x for x in job["attempts"] if x["classification"] == "succeeded"][-1]
        s = a["resolved_settings"]
        reqs.append(dict(t0=a["started_at"], t1=a["started_at"] + a["seconds"], gpu=a["gpu"], size=s["size"],
                         kind=(s["size"], s["infer_frames"], s["num_clip"], s["online_decode"])))
    return reqs


runs = [(p, load(p)) for p in sorted(glob.glob(os.path.join(ROOT, "h200-2026-12-01-*", "warm*-status.json")))]
kinds = sorted({r["kind"] for _, rs in runs for r in rs})
sizes = sorted({r["size"] for _, rs in runs for r in rs})


def predict(rs, alone, rate):
    out = []
    for i, r in enumerate(rs):
        others = [o for j, o in enumerate(rs) if j != i and o["gpu"] == r["gpu"] and o["t1"] > r["t0"]]
        need, t, done = alone[r["kind"]], r["t0"], 0.0
        while True:
            running = [o for o in others if o["t0"] <= t < o["t1"]]
            nxt = min([o["t0"] for o in others if o["t0"] > t] + [o["t1"] for o in others if o["t1"] > t], default=float("inf"))
            v = rate(r, running)
            if done + v * (nxt - t) >= need:
                t += (need - done) / v
                break
            done, t = done + v * (nxt - t), nxt
        out.append(t - r["t0"])
    return np.array(out)


def uniform(p):
    alone = dict(zip(kinds, p)); s = {1: 1.0, 2: p[-3], 3: p[-2], 4: p[-1]}
    return alone, lambda r, running: s[min(4, len(running) + 1)] / min(4, len(running) + 1)


def intensity(p):
    alone = dict(zip(kinds, p)); u = dict(zip(sizes, p[len(kinds):]))
    return alone, lambda r, running: 1.0 / max(1.0, u[r["size"]] + sum(u[o["size"]] for o in running))


def errors(p, model, which):
    alone, rate = model(p)
    return np.concatenate([(predict(rs, alone, rate) - obs) / obs
                           for _, rs in which for obs in [np.array([r["t1"] - r["t0"] for r in rs])]])


n = len(kinds)
for name, model, p0, lo, hi in [
        ("uniform S(k)", uniform, [2.0] * n + [1.2, 1.3, 1.4], [0.1] * n + [1, 1, 1], [100] * n + [2, 3, 4]),
        ("intensity by size", intensity, [2.0] * n + [0.8] * len(sizes), [0.1] * n + [0.05] * len(sizes), [100] * n + [1] * len(sizes))]:
    fit = least_squares(errors, p0, args=(model, runs), bounds=(lo, hi))
    e = np.abs(errors(fit.x, model, runs))
    print("%-18s %d requests in %d warm batches: p50 %.0f%%, p95 %.0f%%; fitted sharing %s" % (
        name, len(e), len(runs), 100 * np.percentile(e, 50), 100 * np.percentile(e, 95), np.round(fit.x[n:], 2).tolist()))
