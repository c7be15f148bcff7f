#!/usr/bin/env bash
# Orchestrator overhead: N trivial jobs (cp of an image) on 8 virtual GPUs, 4 jobs each, through the whole run
# loop (store transactions, process groups, output checks). Usage: bash bench/overhead.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
swift build -c release --product avatar-batch 2>&1 | tail -1
source bench/cp-batch.sh
w=$(cp_batch "$n" overhead)
s=$(date +%s.%N)
.build/release/avatar-batch run "$w/m.yaml" --quiet
e=$(date +%s.%N)
python3 -c "print(f'$n jobs in {$e - $s:.2f} s: {$n / ($e - $s):.0f} jobs/s')"
rm -rf "$w"
