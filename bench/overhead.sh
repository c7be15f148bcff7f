#!/usr/bin/env bash
# Orchestrator overhead beside GNU parallel: N trivial jobs (cp of an image) on 8 virtual GPUs x 4 jobs, through
# the whole session (store transactions, process groups, output checks, renames), then the same N copies with
# GNU parallel -j 32 in the same run; then `status --json` and `status --summary` on the finished store.
# Usage: bash bench/overhead.sh N [N ...]     (e.g. 1000 10000 100000; needs GNU parallel and /usr/bin/time)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v parallel >/dev/null || { echo "overhead.sh: GNU parallel is not installed (apt-get install parallel)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "overhead.sh: /usr/bin/time is not installed (apt-get install time)" >&2; exit 2; }
swift build -c release --product avatar-batch 2>&1 | tail -1
bin=$PWD/.build/release/avatar-batch
source bench/cp-batch.sh
echo "| jobs | avatar-batch | jobs/s | orchestrator peak RSS | GNU parallel -j 32 | jobs/s | time / parallel's | status --json | status --summary |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in "${@:-1000}"; do
  w=$(cp_batch "$n" overhead)
  /usr/bin/time -f '%e %M' -o "$w/time" "$bin" run "$w/m.yaml" --quiet
  read -r secs rss < "$w/time"
  mkdir -p "$w/par"
  s=$(date +%s.%N)
  seq -f 'c%05g' "$n" | parallel -j 32 cp "$w/face.png" "$w/par/{}.png"
  e=$(date +%s.%N)
  /usr/bin/time -f '%e' -o "$w/st" "$bin" status --state "$w/out/.avatar-batch/state.sqlite" --json > "$w/status.json"
  /usr/bin/time -f '%e' -o "$w/sum" "$bin" status --state "$w/out/.avatar-batch/state.sqlite" --summary --json > /dev/null
  python3 - "$n" "$secs" "$rss" "$s" "$e" "$(cat "$w/st")" "$(cat "$w/sum")" "$w/status.json" <<'PY'
import json, sys
n, secs, rss, s, e, st, summ, path = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6], sys.argv[7], sys.argv[8]
done = json.load(open(path))["counts"]["succeeded"]
assert done == n, f"{done} of {n} jobs succeeded"
par = e - s
print(f"| {n:,} | {secs:.1f} s | {n / secs:.0f} | {rss / 1024:.0f} MB | {par:.1f} s | {n / par:.0f} | {secs / par:.2f} | {st} s | {summ} s |")
PY
  rm -rf "$w"
done
