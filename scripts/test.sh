#!/usr/bin/env bash
# The test suite: unit tests, the store on real SQLite files, end-to-end runs of the built binary with the fake
# renderer (crashes, OOMs, timeouts, Ctrl-C, SIGKILL and resume), and the Slurm executor against a real
# single-node Slurm with 4 fake GPUs (started here with the shared start-local-slurm.sh, stopped at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

# Slurm: the project's shared scripts (../shared/slurm beside the checkout, or AVATAR_BATCH_SLURM_SCRIPTS).
slurm_dir=""
for d in "${AVATAR_BATCH_SLURM_SCRIPTS:-}" ../shared/slurm /work/shared/slurm; do
  if [ -n "$d" ] && [ -f "$d/start-local-slurm.sh" ]; then slurm_dir=$(cd "$d" && pwd); break; fi
done
if [ -n "$slurm_dir" ] && [ "$(id -u)" = 0 ]; then
  if bash "$slurm_dir/start-local-slurm.sh"; then
    export AVATAR_BATCH_SLURM_TESTS=1
    trap 'bash "$slurm_dir/stop-local-slurm.sh" >/dev/null 2>&1 || true' EXIT
  else
    echo "test.sh: start-local-slurm.sh failed: the Slurm tests are SKIPPED" >&2
  fi
else
  echo "test.sh: no start-local-slurm.sh (set AVATAR_BATCH_SLURM_SCRIPTS) or not root: the Slurm tests are SKIPPED" >&2
fi

swift build --build-tests 2>&1 | grep -E "error|warning: unre|Compiling|Build complete" | tail -3
swift test --skip-build 2>&1 | tee .build/test.log | grep -vE "^(◇|↳)|^Test Case|^Test Suite" || true
grep -qE "✔ Test run with [0-9]+ tests? in [0-9]+ suites? passed" .build/test.log
if [ "${AVATAR_BATCH_SLURM_TESTS:-}" = 1 ]; then
  # The Slurm suite must have run, not been skipped.
  grep -qE "✔ Suite SlurmTests passed" .build/test.log
fi
# A short coverage-guided fuzz of the manifest and profile loaders (libFuzzer + AddressSanitizer; fuzz/README.md).
bash fuzz/run.sh manifest 30
bash fuzz/run.sh profile 30
