#!/usr/bin/env bash
# Builds a fuzz target with libFuzzer + AddressSanitizer (release, so it runs fast enough) and runs it for a while on
# a copy of its seed corpus. Usage: bash fuzz/run.sh manifest|profile|worker SECONDS [libFuzzer options...]
# A crash, a leak, a hang over 10 s or a failed check in the target stops it with exit 1 and leaves crash-* files.
set -uo pipefail
cd "$(dirname "$0")/.."
target=${1:?manifest, profile or worker}; seconds=${2:-60}; shift 2 || true
swift build --package-path fuzz --scratch-path .build-fuzz -c release --product "fuzz-$target" \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -g >/tmp/fuzz-build-$$.log 2>&1 || { tail -20 /tmp/fuzz-build-$$.log; exit 1; }
work=$(mktemp -d)
mkdir -p "$work/seed" "$work/out" "$work/scratch"
cp -r "fuzz/corpus/$target/." "$work/seed/"
# New inputs go to a scratch corpus; the committed seed corpus stays small.
AVATAR_BATCH_RENDERERS=$PWD/renderers FUZZ_SCRATCH=$work/scratch \
  ".build-fuzz/release/fuzz-$target" "$work/out" "$work/seed" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
  -max_len=65536 -artifact_prefix="$work/" -print_final_stats=1 "$@" >"$work/log" 2>&1
status=$?
grep -E "ERROR|SUMMARY|DONE|stat::number_of_executed_units|stat::average_exec_per_sec" "$work/log" | head -12
if [ $status -ne 0 ]; then
  echo "fuzz-$target failed (exit $status); log and inputs in $work" >&2
  tail -40 "$work/log" >&2
else
  echo "fuzz-$target: no crash, leak or hang in ${seconds}s"
  rm -rf "$work"
fi
exit $status
