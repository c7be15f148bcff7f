#!/usr/bin/env python3
"""Checks one run of bench/gpu/warm-proof.sh and prints its line of figures.

Usage: warm-check.py NAME STATUS_JSON FFPROBE_TXT GPUS_CSV STATE_DIR
- every clip succeeded, with exactly one successful attempt;
- every output has a video and an audio stream;
- every successful attempt ran on the GPU it was assigned: a cold one by its renderer's report (the attempt's note),
  a warm one by the device its worker printed for that job in the worker's log;
- workers: how many, their load times, clips per worker.
"""
import glob, json, os, sys

name, status_path, probe_path, gpus_path, state = sys.argv[1:6]
d = json.load(open(status_path))
uuid_of = {}
for line in open(gpus_path):
    parts = [p.strip() for p in line.split(",")]
    if len(parts) >= 2 and parts[0].isdigit():
        uuid_of[int(parts[0])] = parts[1]

# What each worker printed per job: {"job": ..., "device_uuid": ...}.
worker_device = {}
for log in glob.glob(os.path.join(state, "logs", "workers", "*.log")):
    for line in open(log, errors="replace"):
        if line.startswith("{") and '"job"' in line:
            try:
                r = json.loads(line)
                worker_device[r["job"]] = (r.get("device_uuid"), r.get("device_count"))
            except ValueError:
                pass

problems = []
ok_assigned = 0
attempts = ooms = 0
workers = set()
for j in d["jobs"]:
    wins = [a for a in j["attempts"] if a["classification"] == "succeeded"]
    attempts += len(j["attempts"])
    ooms += sum(a["classification"] == "oom" for a in j["attempts"])
    if len(wins) != 1:
        problems.append(f"{j['id']}: {len(wins)} successful attempts")
        continue
    a = wins[0]
    want = uuid_of.get(a.get("gpu"))
    if a.get("worker"):
        workers.add(a["worker"])
        got = worker_device.get(j["id"])
        if got and got[0] == want and got[1] == 1:
            ok_assigned += 1
        else:
            problems.append(f"{j['id']}: assigned GPU {a.get('gpu')} ({want}), its worker saw {got}")
    elif "matches the assignment" in (a.get("note") or ""):
        ok_assigned += 1
    else:
        problems.append(f"{j['id']}: {a.get('note')}")

probes = [l.split() for l in open(probe_path) if l.strip()]
bad = [p[0] for p in probes if "audio" not in p[1:] or "video" not in p[1:]]
n = len(d["jobs"])
print(f"{name}: {d['counts'].get('succeeded', 0)}/{n} succeeded, {attempts} attempts ({ooms} OOM), "
      f"{len(probes) - len(bad)}/{len(probes)} outputs with video+audio, {ok_assigned}/{n} on their assigned GPU"
      + (f", {len(workers)} workers" if workers else ""))
for p in problems[:10]:
    print(f"  problem: {p}")
for b in bad[:10]:
    print(f"  bad output: {b}")
