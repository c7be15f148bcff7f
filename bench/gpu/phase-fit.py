#!/usr/bin/env python3
"""How well can one S(k) per k explain a batch's co-located attempts at all? (docs/benchmarks.md, "Pairs in phase")

For each recorded H200 batch, S(k) is fitted by least squares to the batch's own attempts (in sample: the best any
S(k) table could do on them), as bench/gpu/sharing-profiles.py does, and the error left on each attempt is printed
as a fraction of its time alone (p50 / p95). Then again with two tables: S(k) for the stretches in which every
neighbour started its render within 1 s of the attempt's own start ("in step") and for the rest ("apart"), since
bench/gpu/phase-probe.py found pairs in step share the card far worse than pairs started apart.
Usage: python3 bench/gpu/phase-fit.py   (from the repository root; needs numpy)"""
import importlib.util, os
import numpy as np

spec = importlib.util.spec_from_file_location("profiles", os.path.join(os.path.dirname(__file__), "sharing-profiles.py"))
sp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sp)

RUNS = ["h200-2026-12-01-warm", "h200-2026-12-01-reported", "h200-2026-12-01-final", "h200-2026-12-01-warmup",
        "h200-2026-12-01-stretches", "h200-2026-12-01-alone", "h200-2026-12-01-shifted"]
STEP = 1.0  # seconds between render starts that count as "in step"


def split(rows):
    """Each attempt's stretches by k, apart into in step and apart."""
    atts = [a for a, _ in rows]
    out = []
    for a, _ in rows:
        others = [b for b in atts if b is not a and b["gpu"] == a["gpu"] and b["end"] > a["start"] and b["start"] < a["end"]]
        cuts = sorted({a["start"], a["end"], *[x for o in others for x in (o["start"], o["end"]) if a["start"] < x < a["end"]]})
        step, apart = {}, {}
        for x0, x1 in zip(cuts, cuts[1:]):
            here = [o for o in others if o["start"] <= (x0 + x1) / 2 < o["end"]]
            k = 1 + len(here)
            into = step if k == 1 or all(abs(o["start"] - a["start"]) < STEP for o in here) else apart
            into[k] = into.get(k, 0) + x1 - x0
        out.append((a, step, apart))
    return out


def fit(eqs):
    """Least squares over the columns with weight; the errors left, as fractions of the time alone."""
    A = np.array([e[0] for e in eqs]); y = np.array([e[1] for e in eqs])
    keep = [i for i in range(A.shape[1]) if A[:, i].sum() > 1.0]
    r, *_ = np.linalg.lstsq(A[:, keep], y, rcond=None)
    return keep, r, np.abs(A[:, keep] @ r - y)


def table(keep, r, names):
    # The fit is of S(k)/k; the name ends in k.
    return ", ".join(f"{names[i]} {float(r[n]) * int(names[i][-1]):.2f}" for n, i in enumerate(keep))


print("| run | batch | attempts | in step, share of shared render | one S(k): S(k) / error p50, p95 | in step and apart: S(k) / error p50, p95 |")
print("| --- | --- | --- | --- | --- | --- |")
for run in RUNS:
    for batch, prefix in (("1", ""), ("2", "second-")):
        status = f"{sp.R}{run}/{prefix or 'run-'}status.json"
        if not os.path.exists(status):
            continue
        rows = split(sp.profiles(status, f"{sp.R}{run}/{prefix}logs.tgz"))
        one, two, shared_step, shared_all = [], [], 0.0, 0.0
        for a, st, ap in rows:
            total = {k: st.get(k, 0) + ap.get(k, 0) for k in set(st) | set(ap)}
            if sum(v for k, v in total.items() if k > 1) < 0.5:
                continue
            y = (a["alone"] - total.get(1, 0)) / a["alone"]
            one.append(([total.get(k, 0) / a["alone"] for k in (2, 3, 4)], y))
            two.append(([st.get(k, 0) / a["alone"] for k in (2, 3, 4)] + [ap.get(k, 0) / a["alone"] for k in (2, 3, 4)], y))
            shared_step += sum(v for k, v in st.items() if k > 1)
            shared_all += sum(v for k, v in total.items() if k > 1)
        k1, r1, e1 = fit(one)
        k2, r2, e2 = fit(two)
        print(f"| {run} | {batch} | {len(one)} | {shared_step / shared_all:.2f} | "
              f"{table(k1, r1, ['S2', 'S3', 'S4'])} / {np.percentile(e1, 50):.0%}, {np.percentile(e1, 95):.0%} | "
              f"{table(k2, r2, ['step2', 'step3', 'step4', 'apart2', 'apart3', 'apart4'])} / {np.percentile(e2, 50):.0%}, {np.percentile(e2, 95):.0%} |")
