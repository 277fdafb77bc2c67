#!/usr/bin/env bash
# `make test-stress`: run the command given (the timing-sensitive tests) beside two busy-loop CPU
# hogs, so a race that a quiet machine hides shows here before CI. The hogs are always killed,
# whatever the command does (its exit status is this script's).
set -uo pipefail
hogs=()
stop_hogs() {
  for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${hogs[@]}"; do wait "$pid" 2>/dev/null; done
  hogs=()
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM
for _ in 1 2; do
  ( while :; do :; done ) &
  hogs+=("$!")
done
echo "test-stress: CPU hogs ${hogs[*]} running beside: $*"
start=$SECONDS
"$@"
rc=$?
echo "test-stress: exit $rc after $((SECONDS - start)) s"
exit "$rc"
