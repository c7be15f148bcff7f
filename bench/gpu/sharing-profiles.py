#!/usr/bin/env python3
"""S(k) from recorded packed runs, two ways (docs/benchmarks.md, "Who slows whom"):
  * by time profile: each attempt's render (its end less its reported render_seconds, to its end) is cut into the
    stretches in which k attempts rendered on its GPU; alone render = T1 + sum over k>=2 of Tk x S(k)/k, fitted by
    least squares over the run's attempts (each row divided by its alone render);
  * by the largest k each attempt saw, as the history has learned it so far: k x alone / its render.
The alone render of each attempt is bench/results/h200-2026-12-01-busy's: seconds per clip of its size and decode,
measured alone on another H200 host (704*384 scaled from 688*368 by pixels), so both ways share its errors.
Usage: python3 bench/gpu/sharing-profiles.py   (from the repository root; needs numpy)"""
import json, re, tarfile
import numpy as np

R = "bench/results/"
probe = {}
for line in open(R + "h200-2026-12-01-busy/probe.jsonl"):
    r = json.loads(line)
    if "probe" in r and r["beside"] in ("alone", "alone2"):
        probe.setdefault((r["size"], r["online"] == "True"), []).append(r["report"]["render_seconds"] / r["clips"])
per_clip = {k: float(np.mean(v)) for k, v in probe.items()}
for online in (False, True):
    per_clip[("704*384", online)] = per_clip[("688*368", online)] * 704 * 384 / (688 * 368)


def reports(tgz):
    out = {}
    with tarfile.open(tgz) as t:
        for m in t.getmembers():
            mm = re.search(r"logs/(.*)\.attempt-(\d+)\.log", m.name)
            if not mm:
                continue
            for line in reversed(t.extractfile(m).read().decode(errors="replace").splitlines()):
                if line.startswith("{") and "startup_s" in line:
                    d = json.loads(line)
                    out[(mm.group(1), int(mm.group(2)))] = d.get("render_seconds", d["seconds"] - d["startup_s"] - d["load_s"])
                    break
    return out


def profiles(status, logs):
    rep = reports(logs)
    atts = []
    for j in json.load(open(status))["jobs"]:
        for a in j["attempts"]:
            if a.get("gpu") is None or "ended_at" not in a:
                continue
            render = rep.get((j["id"], a["number"]))
            s = a["resolved_settings"]
            atts.append(dict(ok=a["classification"] == "succeeded", gpu=a["gpu"], end=a["ended_at"], render=render,
                             start=a["ended_at"] - render if render else a["started_at"] + 4,
                             alone=per_clip[(s["size"], s["online_decode"])] * s["num_clip"]))
    rows = []
    for a in atts:
        if not a["ok"] or a["render"] is None:
            continue
        others = [(b["start"], b["end"]) for b in atts if b is not a and b["gpu"] == a["gpu"] and b["end"] > a["start"] and b["start"] < a["end"]]
        cuts = sorted({a["start"], a["end"], *[x for o in others for x in o if a["start"] < x < a["end"]]})
        T = {}
        for x0, x1 in zip(cuts, cuts[1:]):
            k = 1 + sum(1 for o in others if o[0] <= (x0 + x1) / 2 < o[1])
            T[k] = T.get(k, 0) + x1 - x0
        rows.append((a, T))
    return rows


def by_profile(rows, kmax=4):
    A, y = [], []
    for a, T in rows:
        if sum(v for k, v in T.items() if k > 1) < 0.5:
            continue
        A.append([T.get(k, 0) / a["alone"] for k in range(2, kmax + 1)])
        y.append((a["alone"] - T.get(1, 0)) / a["alone"])
    A, y = np.array(A), np.array(y)
    keep = [i for i in range(A.shape[1]) if A[:, i].sum() > 1.0]
    r, *_ = np.linalg.lstsq(A[:, keep], y, rcond=None)
    return {i + 2: round(float((i + 2) * r[n]), 2) for n, i in enumerate(keep)}


def by_largest_k(rows):
    out = {}
    for a, T in rows:
        k = max(T)
        if k > 1:
            out.setdefault(k, []).append(k * a["alone"] / a["render"])
    return {k: round(float(np.median(v)), 2) for k, v in sorted(out.items())}


if __name__ == "__main__":
    print("| run | batch | attempts | S(k) by time profile | S(k) by the largest k seen (median) |")
    print("| --- | --- | --- | --- | --- |")
    for run in ["h200-2026-12-01-warm", "h200-2026-12-01-reported", "h200-2026-12-01-final", "h200-2026-12-01-warmup", "h200-2026-12-01-stretches"]:
        for batch, prefix in (("1", ""), ("2", "second-")):
            rows = profiles(f"{R}{run}/{prefix or 'run-'}status.json", f"{R}{run}/{prefix}logs.tgz")
            print(f"| {run} | {batch} | {len(rows)} | {by_profile(rows)} | {by_largest_k(rows)} |")
