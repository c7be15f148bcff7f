#!/usr/bin/env python3
"""Reads bench/gpu/busy-probe.sh's results: per probe, its render alone (twice), the GPU's busy fraction while it
rendered alone (nvidia-smi utilization.gpu), and how much slower it rendered beside each neighbour.
Usage: python3 bench/gpu/busy-fit.py RESULTS_DIR"""
import datetime, json, sys

d = sys.argv[1] if len(sys.argv) > 1 else "."
util = []
for line in open(f"{d}/util.csv"):
    ts, u = line.strip().split(", ")
    # nvidia-smi prints the host's local time; the GPU host runs in UTC.
    t = datetime.datetime.strptime(ts, "%Y/%m/%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc).timestamp()
    util.append((t, float(u)))
runs = {}
for line in open(f"{d}/probe.jsonl"):
    r = json.loads(line)
    if "probe" not in r or not r.get("report"):
        continue
    render, end = r["report"]["render_seconds"], r["ended"]
    busy = [u for t, u in util if end - render <= t <= end - 0.3]
    runs[(r["probe"], r["beside"])] = (render, sum(busy) / len(busy) if busy else float("nan"))
print("| probe | render alone (s, twice) | GPU busy alone | beside a large neighbour | beside a small neighbour |")
print("| --- | --- | --- | --- | --- |")
for p in dict.fromkeys(k[0] for k in runs):
    a1, a2 = runs[(p, "alone")], runs[(p, "alone2")]
    alone = (a1[0] + a2[0]) / 2
    cells = [f"x{runs[(p, n)][0] / alone:.2f}" if (p, n) in runs else "-" for n in ("big", "small")]
    print(f"| {p} | {a1[0]:.2f} / {a2[0]:.2f} | {a1[1]:.0f}% / {a2[1]:.0f}% | {cells[0]} | {cells[1]} |")
