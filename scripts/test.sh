#!/usr/bin/env bash
# The test suite: unit tests, the store on real SQLite files, end-to-end runs of the built binary with the fake
# renderer (crashes, OOMs, timeouts, Ctrl-C, SIGKILL and resume), and the Slurm executor against a real
# single-node Slurm with 4 fake GPUs (started here with scripts/local-slurm.sh, stopped at the end), then a short
# fuzz of the loaders.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

# Slurm: the project's own single-node Slurm (scripts/local-slurm.sh: Debian's packages, 4 fake GPUs with shards).
# Should it fail to start, the shared scripts beside the checkout (../shared/slurm) are tried before giving up.
if [ "$(id -u)" = 0 ]; then
  if bash scripts/local-slurm.sh start; then
    export AVATAR_BATCH_SLURM_TESTS=1
    trap 'bash scripts/local-slurm.sh stop >/dev/null 2>&1 || true' EXIT
  else
    slurm_dir=""
    for d in "${AVATAR_BATCH_SLURM_SCRIPTS:-}" ../shared/slurm; do
      if [ -n "$d" ] && [ -f "$d/start-local-slurm.sh" ]; then slurm_dir=$(cd "$d" && pwd); break; fi
    done
    if [ -n "$slurm_dir" ] && bash "$slurm_dir/start-local-slurm.sh"; then
      echo "test.sh: scripts/local-slurm.sh failed; using $slurm_dir/start-local-slurm.sh" >&2
      export AVATAR_BATCH_SLURM_TESTS=1
      trap 'bash "$slurm_dir/stop-local-slurm.sh" >/dev/null 2>&1 || true' EXIT
    else
      echo "test.sh: no local Slurm could be started: the Slurm tests are SKIPPED" >&2
    fi
  fi
else
  echo "test.sh: not root: the Slurm tests are SKIPPED" >&2
fi

swift build --build-tests 2>&1 | grep -E "error|warning: unre|Compiling|Build complete" | tail -3
swift test --skip-build 2>&1 | tee .build/test.log | grep -vE "^(◇|↳)|^Test Case|^Test Suite" || true
grep -qE "✔ Test run with [0-9]+ tests? in [0-9]+ suites? passed" .build/test.log
if [ "${AVATAR_BATCH_SLURM_TESTS:-}" = 1 ]; then
  # The Slurm suite must have run, not been skipped.
  grep -qE "✔ Suite SlurmTests passed" .build/test.log
fi
# A short coverage-guided fuzz of the manifest and profile loaders and the worker protocol parser (libFuzzer + AddressSanitizer; fuzz/README.md).
bash fuzz/run.sh manifest 30
bash fuzz/run.sh profile 30
bash fuzz/run.sh worker 30
