#!/bin/bash
# The smoke suite's wall time on one worker process against two, measured in the same call, each from an
# empty results folder (so both run every job). Prints the two times and their ratio.
set -euo pipefail
UNAS=${1:-target/debug/unas}
# SUITE: experiment files or folders, space-separated (default: the whole paper suite).
read -r -a SUITE_PATHS <<< "${SUITE:-experiments/paper}"
suite_args=()
for p in "${SUITE_PATHS[@]}"; do suite_args+=(--suite "$p"); done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A wall
for n in 1 2; do
  start=$(date +%s.%N)
  "$UNAS" --results "$tmp/w$n" reproduce --tier smoke "${suite_args[@]}" --workers "$n" >"$tmp/w$n.out" 2>&1 || true
  end=$(date +%s.%N)
  wall[$n]=$(echo "$end - $start" | bc)
  echo "--workers $n: ${wall[$n]} s ($(grep -c '' "$tmp/w$n.out") lines of output; $(grep -cE '^\S+ +(search|train) +[0-9]+ +\S+ +done' "$tmp/w$n.out" || true) jobs done)"
done
echo "ratio (workers 2 / workers 1): $(echo "scale=3; ${wall[2]} / ${wall[1]}" | bc)"
