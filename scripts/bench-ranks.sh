#!/bin/bash
# The search step over ranks on this machine's CPU: the same search job (DARTS space L=8, C=16, batch 32,
# sub_batches 2, REBAR on the gen-gap objective; STEPS search steps, then validation) run by 2 ranks ×
# 1 thread, by 1 process × 2 threads and by 1 process × 1 thread, alternating, ROUNDS times, each from
# an empty results folder. Prints each job's wall time, its ratio to 1 process × 2 threads, the share
# of rank 0's time spent in collectives (waiting for rank 1 included), and each process's peak RSS (the
# ranks' own report, and GNU time's for the largest process of each job).
set -euo pipefail
UNAS=${1:-target/debug/unas}
STEPS=${STEPS:-4}
ROUNDS=${ROUNDS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
images=$((STEPS * 32 * 2)) # train_portion 0.5: STEPS batches of 32 to train on, as many to validate
cat > "$tmp/bench-ranks.yaml" <<YAML
name: bench-ranks
dataset: {name: synthetic, train_portion: 0.5, synthetic: {classes: 10, train: $images, test: 32, seed: 0}}
space: {name: darts, layers: 8, channels: 16, ops: 7}
search: {estimator: rebar, objective: {kind: gengap}, epochs: {warmup: 0, search: 1}, batch: 32, sub_batches: 2}
train: {recipe: cifar, genotype: search, epochs: 1, warmup_epochs: 0, batch: 32, channels: 8, layers: 3, sub_batches: 2}
seeds: {search: [0], train: [0]}
device: cpu
YAML
job=$("$UNAS" --results "$tmp/ids" status --suite "$tmp" --tier paper --json \
  | python3 -c 'import json,sys; print([j["run_id"] for j in json.load(sys.stdin)["jobs"] if j["stage"]=="search"][0])')
declare -A sum
configs=("2 ranks x 1 thread|--threads 1 run $tmp/bench-ranks.yaml --job $job --ranks 2"
         "1 process x 2 threads|--threads 2 run $tmp/bench-ranks.yaml --job $job"
         "1 process x 1 thread|--threads 1 run $tmp/bench-ranks.yaml --job $job")
for round in $(seq 1 "$ROUNDS"); do
  for c in "${configs[@]}"; do
    name=${c%%|*}
    read -r -a args <<< "${c#*|}"
    out="$tmp/r$round-${name// /_}"
    # GNU time's maximum resident set: the process's own, or (the launcher of ranks) its largest rank's
    /usr/bin/time -f "%M" -o "$out.rss" "$UNAS" -v --results "$out" "${args[@]}" >"$out.out" 2>"$out.err"
    wall=$(awk '$2 == "search" && $5 == "done" {print $6}' "$out.out")
    sum[$name]=$(echo "${sum[$name]:-0} + $wall" | bc)
    costs=$(grep -ho 'rank [0-9] of 2: [0-9.]* s in collectives, peak RSS [0-9]* MiB' "$out.err" "$out"/runs/*/*/*/run.log 2>/dev/null | sort -u | tr '\n' ';' || true)
    echo "round $round  $name: search job $wall s, largest process peak RSS $(( $(cat "$out.rss") / 1024 )) MiB  $costs"
  done
done
base=${sum["1 process x 2 threads"]}
for c in "${configs[@]}"; do
  name=${c%%|*}
  echo "$name: mean $(echo "scale=2; ${sum[$name]} / $ROUNDS" | bc) s, $(echo "scale=3; $base / ${sum[$name]}" | bc)x the speed of 1 process x 2 threads"
done
