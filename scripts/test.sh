#!/usr/bin/env bash
# The test suite: unit tests, the store on real SQLite files, and end-to-end runs of the built binary
# with the fake renderer (crashes, OOMs, timeouts, Ctrl-C, SIGKILL and resume).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
swift build --build-tests 2>&1 | grep -E "error|warning: unre|Compiling|Build complete" | tail -3
swift test --skip-build 2>&1 | tee .build/test.log | grep -vE "^(◇|↳)|^Test Case|^Test Suite" || true
grep -qE "✔ Test run with [0-9]+ tests? in [0-9]+ suites? passed" .build/test.log
