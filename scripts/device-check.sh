#!/usr/bin/env bash
# The one prepared check of a device (issue 16): what the device is, whether our numbers on it agree
# with the CPU's, whether the smoke search and training stages run there, and how fast the search and
# training steps are against our PyTorch reference (bench/reference.py) measured in the same call.
# Everything goes into one folder; a short table is printed last; the exit status is non-zero when a
# check failed.
#
#   scripts/device-check.sh [--device cuda|cuda:N|cpu] [--bin PATH] [--out DIR] [--python PATH]
#                           [--quick] [--rounds N]
#
# On a GPU machine (no Rust toolchain there): build here with
#   UNAS_EXTRA_RPATH=/opt/torch/.venv/lib/python3.12/site-packages/torch/lib \
#     cargo build --release --no-default-features
# copy target/release/unas and this repository's experiments/, bench/, scripts/ across, and run
#   scripts/device-check.sh --device cuda --bin ./unas --python /opt/torch/.venv/bin/python --out "$OUT"
# On the CPU: scripts/device-check.sh --device cpu (the test suite runs it with --quick).
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda
bin=target/release/unas
out=device-check
python=""
quick=0
rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) sed -n 2,17p "$0"; exit 0 ;;
    *) echo "device-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ ! -x "$bin" ]; then
  echo "device-check: no unas binary at '$bin': build one (see --help) or pass --bin PATH" >&2
  exit 2
fi
mkdir -p "$out"
summary="$out/summary.tsv"
printf 'check\tresult\tdetail\n' > "$summary"
failed=0
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$summary"; [ "$2" = ok ] || [ "$2" = skipped ] || failed=1; }

# 1. The machine: GPU name and driver (nvidia-smi), what libtorch sees, cuDNN's library version.
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(hostname)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') ($(nproc) cores)"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader || true
  else
    echo "nvidia-smi: not on this machine"
  fi
  libdir=$(ldd "$bin" | awk '/libtorch_cpu.so/ {print $3}' | xargs -r dirname)
  echo "libtorch_cpu: ${libdir:-not found by ldd}"
  cudnn=$(ls "$libdir"/../../nvidia/cudnn/lib/libcudnn.so.* 2>/dev/null | head -1 || true)
  echo "cudnn library: ${cudnn:-none beside libtorch}"
} > "$out/machine.txt" 2>&1
"$bin" --device "$device" diagnose device > "$out/device.json"
if grep -q '"cuda_available": true' "$out/device.json" || [ "$device" = cpu ]; then
  record "device $device" ok "$(tr -d '\n ' < "$out/device.json" | cut -c1-160)"
else
  record "device $device" FAIL "CUDA not available: see $out/device.json"
fi
if [ "$device" != cpu ]; then
  if python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["nccl"]["usable"] else 1)' "$out/device.json"; then
    record "nccl" ok "the NCCL shim loads and reads GPU 0's UUID"
  else
    record "nccl" FAIL "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nccl"].get("why"))' "$out/device.json")"
  fi
fi

# 2. The same computations on the CPU and on the device (relaxed vs discrete, logits, REBAR gradient).
if "$bin" --device "$device" diagnose parity --json > "$out/parity.json" 2> "$out/parity.err"; then
  record "parity cpu vs $device" ok "$(grep -o '"rel_diff":[^,]*' "$out/parity.json" | cut -d: -f2 | paste -sd' ')"
else
  record "parity cpu vs $device" FAIL "see $out/parity.json and $out/parity.err"
fi

# 3. The smoke-tier search and the training of its genotype, on the device.
export UNAS_RESULTS="$out/results"
if "$bin" --device "$device" --results "$out/results" run experiments/paper/c10-darts-unas.yaml \
    --tier smoke > "$out/smoke-run.log" 2>&1; then
  record "smoke search + train on $device" ok "$(find "$out/results" -name summary.parquet | wc -l) summaries"
else
  record "smoke search + train on $device" FAIL "see $out/smoke-run.log"
fi

# 4. Step timings at fp32 and under bf16 autocast: ours, and against the reference in the same call
#    when a Python with torch is given.
if [ "$quick" = 1 ]; then
  search_shape=(--layers 3 --channels 4 --batch 8)
  train_shape=(--layers 3 --channels 8 --batch 16)
  steps=1
elif [ "$device" = cpu ]; then
  search_shape=(--layers 8 --channels 16 --batch 32)
  train_shape=(--layers 20 --channels 36 --batch 128)
  steps=3
else
  search_shape=(--layers 8 --channels 16 --batch 128)
  train_shape=(--layers 20 --channels 36 --batch 128)
  steps=20
fi
for what in search train; do
  shape_var="${what}_shape[@]"
  for precision in fp32 bf16; do
    name="bench-$what"; [ "$precision" = fp32 ] || name="bench-$what-$precision"
    label="bench step $what"; [ "$precision" = fp32 ] || label="bench step $what $precision"
    if "$bin" --device "$device" bench step "$what" "${!shape_var}" --steps "$steps" \
        --precision "$precision" --json > "$out/$name.json" 2> "$out/$name.err"; then
      record "$label" ok "$(grep -o '"images_per_s":[^,]*' "$out/$name.json")"
    else
      record "$label" FAIL "see $out/$name.err"
    fi
  done
done
for precision in fp32 bf16; do
  label="ours vs reference"; [ "$precision" = fp32 ] || label="ours vs reference $precision"
  # fp32 on a GPU: a third training arm, ours with CUDA graphs (they do not combine with bf16)
  graphs=(); [ "$precision" = fp32 ] && [ "$device" != cpu ] && graphs=(--cuda-graphs)
  if [ -n "$python" ]; then
    if "$python" bench/compare.py --unas "$bin" --python "$python" --what both --device "$device" \
        --rounds "$rounds" --precision "$precision" "${graphs[@]}" --out "$out/BENCHMARKS.md" \
        > "$out/compare-$precision.log" 2>&1; then
      record "$label" ok "$(tail -1 "$out/compare-$precision.log")"
    else
      record "$label" FAIL "see $out/compare-$precision.log"
    fi
  else
    record "$label" skipped "no --python with torch given"
  fi
done

# 5. CUDA graphs (train.cuda_graphs): the training step eager and replayed from the same state, the
#    weights after it compared; then the replayed step timed against the eager one of section 4.
if [ "$device" = cpu ]; then
  record "cuda graphs vs eager" skipped "CUDA graphs need a CUDA device"
  record "bench step train cuda-graphs" skipped "CUDA graphs need a CUDA device"
else
  if "$bin" --device "$device" diagnose cuda-graphs "${train_shape[@]}" --steps 6 --json \
      > "$out/cuda-graphs.json" 2> "$out/cuda-graphs.err"; then
    record "cuda graphs vs eager" ok "$(tr -d '\n ' < "$out/cuda-graphs.json" | cut -c1-200)"
  else
    record "cuda graphs vs eager" FAIL "see $out/cuda-graphs.json and $out/cuda-graphs.err"
  fi
  if "$bin" --device "$device" bench step train "${train_shape[@]}" --steps "$steps" --cuda-graphs \
      --json > "$out/bench-train-cuda-graphs.json" 2> "$out/bench-train-cuda-graphs.err"; then
    record "bench step train cuda-graphs" ok \
      "$(grep -o '"images_per_s":[^,]*' "$out/bench-train-cuda-graphs.json") (eager: $(grep -o '"images_per_s":[^,]*' "$out/bench-train.json" | cut -d: -f2))"
  else
    record "bench step train cuda-graphs" FAIL "see $out/bench-train-cuda-graphs.err"
  fi
fi

# 6. Two ranks (unas run --ranks 2) on this device: the smoke search of section 3 again, each rank on
#    its own GPU where there are two (--gpus 0,1: NCCL carries the CUDA tensors, and must), both on the
#    one GPU otherwise (--gpus 0,0: NCCL refuses two ranks on one GPU, so Gloo through the host); on
#    the CPU two ranks splitting the cores (Gloo). Its genotype must be section 3's; the backend the
#    ranks chose is read from the run's provenance.json.
if [ "$quick" = 1 ]; then
  record "2 ranks" skipped "--quick: tests/ranks.rs covers ranks on the CPU"
else
  gpus=()
  want=gloo
  if [ "$device" != cpu ]; then
    n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    if [ "${n:-0}" -ge 2 ]; then
      gpus=(--gpus 0,1); where="one GPU each (0,1)"; want=nccl
    else
      gpus=(--gpus 0,0); where="both on GPU 0"
    fi
  else
    where="CPU, cores split"
  fi
  if "$bin" --results "$out/results-ranks" run experiments/paper/c10-darts-unas.yaml --tier smoke \
      --set train.sub_batches=2 --ranks 2 "${gpus[@]}" --rank-timeout 120 > "$out/ranks-run.log" 2>&1; then
    one=$(find "$out/results" -path '*search-*' -name genotype.json | head -1)
    two=$(find "$out/results-ranks" -path '*search-*' -name genotype.json | head -1)
    prov=$(dirname "$two")/provenance.json
    backend=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("rank_backend"))' "$prov" 2>/dev/null || echo "?")
    if [ -z "$one" ] || ! cmp -s "$one" "$two"; then
      record "2 ranks ($backend)" FAIL "$where; genotype differs from section 3's ($one vs $two)"
    elif [ "${backend%% *}" != "$want" ]; then
      record "2 ranks ($backend)" FAIL "$where; expected $want"
    else
      record "2 ranks ($backend)" ok "$where; the genotype of the one-process search"
    fi
  else
    record "2 ranks" FAIL "$where; see $out/ranks-run.log"
  fi
fi

column -t -s $'\t' "$summary" 2>/dev/null || cat "$summary"
exit "$failed"
