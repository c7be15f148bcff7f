#!/usr/bin/env bash
# SIGKILL the orchestrator mid-batch on the GPU host, run the same command again, and check that the batch
# completes with nothing lost and nothing finished rendered twice.
# Usage (after prepare.sh): bash bench/gpu/kill-resume.sh WORKDIR N KILL_AFTER_S
set -u
W=${1:-/tmp/kr}; N=${2:-12}; after=${3:-20}
rm -rf "$W"; python3 bench/gpu/make-manifest.py "$W" "$N" > /dev/null
m="$W/gpu-proof.yaml"
avatar-batch run "$m" 2> "$W/run1.log" &
pid=$!
sleep "$after"
kill -9 $pid; wait $pid 2>/dev/null
echo "killed the orchestrator (pid $pid) after ${after}s; renderer processes still running: $(pgrep -fc synthetic_dit.py)"
avatar-batch status "$m" --json > "$W/before.json"
avatar-batch run "$m" 2> "$W/run2.log"; echo "second run exit status: $?"
avatar-batch status "$m" --json > "$W/after.json"
grep -E "stopping leftover|requeue" "$W/run2.log"
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
before, after = json.load(open(f"{w}/before.json")), json.load(open(f"{w}/after.json"))
done_before = {j["id"] for j in before["jobs"] if j["state"] == "succeeded"}
print(f"succeeded before the kill: {len(done_before)}; after the resume: {after['counts']}")
ok = True
for j in after["jobs"]:
    wins = [a for a in j["attempts"] if a["classification"] == "succeeded"]
    if len(wins) != 1:
        ok = False; print(f"{j['id']}: {len(wins)} successful attempts")
    if j["id"] in done_before and len(j["attempts"]) != len([a for a in before["jobs"] if a["id"] == j["id"]][0]["attempts"]):
        ok = False; print(f"{j['id']}: rendered again after the kill")
interrupted = sum(a["classification"] == "interrupted" for j in after["jobs"] for a in j["attempts"])
print(f"attempts recorded as interrupted by the kill: {interrupted}")
print("RESULT:", "nothing lost, nothing finished rendered twice" if ok and after["counts"]["succeeded"] == len(after["jobs"]) else "PROBLEM")
PY
echo "renderer processes left: $(pgrep -fc synthetic_dit.py)"
