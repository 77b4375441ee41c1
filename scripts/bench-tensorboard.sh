#!/bin/bash
# What writing TensorBoard event files costs a smoke search: experiments/paper/c10-darts-unas.yaml at the
# smoke tier (search then train), ROUNDS times with event files (the default) and with --no-tensorboard,
# alternated, each from an empty results folder, in one call. Prints each call's wall and CPU (user +
# system) seconds, the on/off ratios of their totals, and the seconds the recorders themselves spent on
# events (their run.log line) against the runs' wall seconds: the figure a loaded machine does not blur.
set -euo pipefail
UNAS=${1:-target/debug/unas}
ROUNDS=${ROUNDS:-2}
EXPERIMENT=${EXPERIMENT:-experiments/paper/c10-darts-unas.yaml}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A total=([on]=0 [off]=0) cpu=([on]=0 [off]=0)
for r in $(seq "$ROUNDS"); do
  for mode in on off; do
    flag=(); [ "$mode" = off ] && flag=(--no-tensorboard)
    start=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$tmp/$mode$r.time" \
      "$UNAS" --results "$tmp/$mode$r" "${flag[@]}" reproduce --tier smoke --suite "$EXPERIMENT" >"$tmp/$mode$r.out" 2>&1
    end=$(date +%s.%N)
    wall=$(echo "$end - $start" | bc)
    c=$(awk '{print $1 + $2}' "$tmp/$mode$r.time")
    total[$mode]=$(echo "${total[$mode]} + $wall" | bc)
    cpu[$mode]=$(echo "${cpu[$mode]} + $c" | bc)
    echo "round $r, events $mode: $wall s wall, $c s CPU"
  done
done
ratio() { if [ "$(echo "$2 > 0" | bc)" = 1 ]; then echo "scale=4; $1 / $2" | bc; else echo "n/a"; fi; }
echo "ratio (events on / off, totals of $ROUNDS rounds): wall $(ratio "${total[on]}" "${total[off]}"), CPU $(ratio "${cpu[on]}" "${cpu[off]}")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
# run.log: "time spent writing TensorBoard events in this process seconds=S of_wall_s=W"
grep -rh "time spent writing TensorBoard events" "$tmp"/on*/runs --include=run.log \
  | sed -E 's/.*seconds=([0-9.e-]+) of_wall_s=([0-9.e-]+).*/\1 \2/' \
  | awk '{s += $1; w += $2; n += 1} END {printf "recorders: %.4f s on events of %.1f s of runs (%d runs): %.4f%%\n", s, w, n, 100 * s / w}'
