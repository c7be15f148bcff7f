#!/usr/bin/env bash
# Soak: the chaos tests (SIGKILL the orchestrator at random moments, then check nothing was lost or redone) again
# and again with new seeds, for as long as asked. Usage: bash scripts/soak.sh [SECONDS] [CLIPS] [KILLS] [ROUNDS]
# Each round runs both: one process per clip, and warm workers (kills land in requests). SOAK_FILTER picks one
# (e.g. SOAK_FILTER=sigkillOfWarmWorker).
set -u
cd "$(dirname "$0")/.."
duration=${1:-600}; clips=${2:-200}; kills=${3:-30}; max_rounds=${4:-0}
swift build --build-tests 2>&1 | tail -1
end=$((SECONDS + duration)); seed=1; passed=0; failed=0
while [ $SECONDS -lt $end ] && { [ "$max_rounds" = 0 ] || [ $((seed - 1)) -lt "$max_rounds" ]; }; do
  log=$(mktemp)
  if AVATAR_BATCH_CHAOS_CLIPS=$clips AVATAR_BATCH_CHAOS_KILLS=$kills AVATAR_BATCH_CHAOS_SEED=$seed \
       swift test --skip-build --filter "${SOAK_FILTER:-ChaosTests}" > "$log" 2>&1; then
    passed=$((passed + 1)); rm -f "$log"
  else
    failed=$((failed + 1)); echo "seed $seed FAILED; replay: AVATAR_BATCH_CHAOS_SEED=$seed ...; log: $log"
  fi
  seed=$((seed + 1))
done
rounds=$((passed + failed))
tests=$([ -n "${SOAK_FILTER:-}" ] && echo 1 || echo 2)
echo "soak: $rounds rounds of $tests test(s), $((rounds * clips * tests)) clips, $((rounds * kills * tests)) SIGKILLs"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
