#!/usr/bin/env bash
# Power-loss test: a batch is killed again and again with SIGKILL of the orchestrator and every renderer at once (as
# a power cut stops them), and each time the store's write-ahead log loses a random tail: in WAL mode with
# synchronous=NORMAL, what was written since the last checkpoint is not yet on disk, so any cut of it is a state a
# power cut can leave. Then the same command runs to the end. Checked after every cut and at the end: the store opens
# (integrity_check ok) or fails with a fix, never a raw SQLite error; nothing is recorded succeeded without its
# output file; at the end every clip has succeeded. Usage: bash scripts/powerloss.sh [CUTS] [CLIPS] [SEED]
set -uo pipefail
cd "$(dirname "$0")/.."
cuts=${1:-50}; clips=${2:-200}; seed=${3:-1}
swift build --product avatar-batch 2>&1 | grep -E "error|Build complete" | tail -1
bin=$PWD/.build/debug/avatar-batch
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cp manifests/demo-assets/teacher.png "$w/face.png"; cp manifests/demo-assets/lesson-03.wav "$w/a.wav"
cat > "$w/fake.yaml" <<YAML
name: fake
command: [python3, "$PWD/renderers/testkit/fake_renderer.py", --output, "{output}", --clip, "{clip_id}", --sleep, "0.4"]
output_check: nonempty
max_jobs_per_gpu: 2
memory: {points: [{size: "384*256", infer_frames: 48, gb: 10}], headroom: 0}
time: {points: [{size: "384*256", infer_frames: 48, ms_per_frame: 1}]}
sharing: {2: 1.5}
YAML
{ printf 'version: 1\nname: powerloss\noutput_dir: out\nrenderer: fake.yaml\ngpus: 4x24GB\n'
  printf 'defaults: {image: face.png, audio: a.wav, prompt: p, size: "384*256", num_clip: 1}\nclips:\n'
  for i in $(seq "$clips"); do printf '  - {id: c%03d}\n' "$i"; done; } > "$w/m.yaml"
store=$w/out/.avatar-batch/state.sqlite
check() { # the store after a cut: opens and is whole, nothing recorded done without its file
  python3 - "$store" "$w/out" <<'PY'
import os, sqlite3, sys
store, out = sys.argv[1], sys.argv[2]
if not os.path.exists(store):
    sys.exit(0)
db = sqlite3.connect(store)
ok = db.execute("PRAGMA integrity_check").fetchone()[0]
if ok != "ok":
    print("integrity_check:", ok); sys.exit(1)
# A cut in the first second can take the schema with it: an empty store is a valid state (nothing was recorded).
if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone():
    sys.exit(0)
missing = [r[0] for r in db.execute("SELECT id FROM jobs WHERE state = 'succeeded'") if not os.path.exists(os.path.join(out, r[0] + ".mp4"))]
if missing:
    print("recorded succeeded without a file:", missing); sys.exit(1)
PY
}
RANDOM=$seed
bad=0; done_cuts=0
for i in $(seq "$cuts"); do
  setsid "$bin" run "$w/m.yaml" --quiet --grace 1 >"$w/run.log" 2>&1 &
  pid=$!
  sleep "$(python3 -c "import random; random.seed($seed * 1000 + $i); print(round(random.uniform(0.2, 2.5), 2))")"
  kill -KILL -- "-$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if grep -qiE "sqlite error|SQLITE_|database disk image" "$w/run.log"; then echo "cut $i: raw SQLite error:"; cat "$w/run.log"; bad=$((bad + 1)); fi
  [ -n "${POWERLOSS_DEBUG:-}" ] && ls -la "$(dirname "$store")" >&2
  if [ -s "$store-wal" ]; then
    size=$(stat -c %s "$store-wal")
    keep=$(python3 -c "import random; random.seed($seed * 7919 + $i); print(random.randint(min(32, $size), $size))")
    truncate -s "$keep" "$store-wal"
    done_cuts=$((done_cuts + 1))
  fi
  check || { echo "cut $i: check failed"; bad=$((bad + 1)); }
done
"$bin" run "$w/m.yaml" --quiet --grace 1 >"$w/final.log" 2>&1
final=$?
if grep -qiE "sqlite error|SQLITE_|database disk image" "$w/final.log"; then echo "final run: raw SQLite error"; bad=$((bad + 1)); fi
check || bad=$((bad + 1))
succeeded=$(python3 -c "import sqlite3; print(sqlite3.connect('$store').execute(\"SELECT count(*) FROM jobs WHERE state = 'succeeded'\").fetchone()[0])")
echo "powerloss: $cuts SIGKILLs, $done_cuts WAL tails cut, final run exit $final, $succeeded/$clips succeeded"
[ "$final" = 0 ] && [ "$succeeded" = "$clips" ] && [ "$bad" = 0 ] && { echo "0 lost, nothing recorded done without its file"; exit 0; }
echo "FAILED ($bad problems)"; tail -20 "$w/final.log"; exit 1
