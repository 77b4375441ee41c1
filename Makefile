# unas — every set-up step lives here, so a fresh clone needs only `make test` or `make reproduce`.
#
#   make setup       install the pinned PyTorch wheel (libtorch) into .deps/ (CPU-capable, 0.54 GB), and the
#                    CUDA and NCCL headers the NCCL shim compiles against (0.97 GB downloaded, 19 MB kept)
#   make setup-gpu   the full wheel with its CUDA libraries into the same folder (2.7 GB; GPU machines)
#   make build       build the `unas` binary (dev profile, no debug info)
#   make lint        cargo fmt --check and cargo clippy (warnings are errors)
#   make test        all unit and integration tests (after test-deps)
#   make test-deps   Chromium (browser test of the report) and Slurm + munge (tests/slurm.rs): apt, only
#                    if missing and root; the tensorboard package (tests/tensorboard.rs) into .deps/tb-venv
#   make reproduce   the paper suite (TIER=smoke|quick|paper, default smoke; WORKERS=N worker processes
#                    or GPUS=0,1,… one per GPU; RANKS=R each job on R ranks), then the report
#   make parity      one warm-up, search and training step of ours against the PyTorch reference from the
#                    same state, noise and batches, both spaces × six estimators (unas diagnose
#                    parity-torch; torch into .deps/bench-venv as for make bench: not part of make test,
#                    which would pass its 15-minute budget)
#   make bench-workers  smoke-suite wall time with --workers 2 against --workers 1, measured in one call
#   make bench-tensorboard  a smoke search with TensorBoard event files against --no-tensorboard, in one
#                    call, and the time the recorders spent on events (ROUNDS=N, default 2)
#   make bench-ranks    one search job on 2 ranks x 1 thread against 1 process x 2 threads and x 1 thread
#   make report      rebuild results/reports from results/runs
#   make bench       benchmarks: cargo bench, then ours against our PyTorch reference (bench/compare.py)
#                    into BENCHMARKS.md; torch into .deps/bench-venv (4.6 GB, not part of make test);
#                    BENCH_PROFILE=release|dev (default release), BENCH_ARGS='--what search --rounds 5'
#   make clean       remove build outputs (keeps .deps and results)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
CARGO ?= cargo
# tch 0.24.0 + torch-sys 0.24.0 (Cargo.toml) are pinned in lock-step with this wheel.
TORCH_VERSION := 2.11.0
CUDA_RUNTIME := nvidia-cuda-runtime==13.0.96
CUDA_CUPTI := nvidia-cuda-cupti==13.0.85
# Headers only (134 kB): cuda_runtime.h needs crt/, which build.rs needs for the CUDA-graph shim.
CUDA_CRT := nvidia-cuda-crt==13.0.88
TORCH_DIR := .deps/torch-$(TORCH_VERSION)
TORCH_STAMP := $(TORCH_DIR)/.installed
CRT_STAMP := $(TORCH_DIR)/.crt-installed
# Headers only, of the wheels torch 2.11.0 names (nvidia-nccl-cu13 in its own Requires-Dist, the rest in
# cuda-toolkit==13.0.2's): the NCCL shim (src/dist/nccl.cpp) compiles against ProcessGroupNCCL.hpp,
# which includes nccl.h and, through ATen/cuda, cuBLAS, cuSPARSE, cuSOLVER and CCCL headers. Keep
# these in lock-step with TORCH_VERSION: the shim asserts the class layout it was compiled with.
# 0.97 GB downloaded, 19 MB kept, in a folder of its own (setup-gpu's `pip --upgrade` rewrites nvidia/).
CUDA_HEADER_WHEELS := nvidia-nccl-cu13==2.28.9 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.1.0.3 \
	nvidia-cusparse==12.6.3.3 nvidia-cusolver==12.0.4.66
CUDA_HEADERS := .deps/cuda-headers-$(TORCH_VERSION)
HEADERS_STAMP := $(CUDA_HEADERS)/.installed
# Also set in .cargo/config.toml, so plain `cargo test` works after `make setup`.
export LIBTORCH := $(CURDIR)/$(TORCH_DIR)/torch
UNAS := target/debug/unas
PIP := $(PYTHON) -m pip install --disable-pip-version-check --no-input --progress-bar off

.PHONY: setup setup-gpu build build-release lint test test-deps reproduce report bench bench-workers bench-tensorboard bench-ranks clean

setup: $(TORCH_STAMP) $(CRT_STAMP) $(HEADERS_STAMP)

# libtorch_cpu.so needs libcudart.so.13 and libcupti.so.13 even on a CPU, hence the two small CUDA
# wheels. Installed into a temporary folder and renamed, so an interrupted install is never used.
$(TORCH_STAMP):
	@echo "installing torch==$(TORCH_VERSION) (libtorch for tch) into $(TORCH_DIR)"
	rm -rf $(TORCH_DIR).partial
	$(PIP) --no-deps --target $(TORCH_DIR).partial torch==$(TORCH_VERSION) $(CUDA_RUNTIME) $(CUDA_CUPTI)
	test -f $(TORCH_DIR).partial/torch/lib/libtorch_cpu.so
	rm -rf $(TORCH_DIR) && mv $(TORCH_DIR).partial $(TORCH_DIR)
	touch $(TORCH_STAMP)

# The CUDA runtime's crt/ headers beside the wheel's (a checkout set up before they were needed gets
# them too). Only build.rs reads them: the CUDA-graph shim compiles against ATen/cuda/CUDAGraph.h.
$(CRT_STAMP): $(TORCH_STAMP)
	rm -rf $(TORCH_DIR).crt
	$(PIP) --no-deps --target $(TORCH_DIR).crt $(CUDA_CRT)
	test -f $(TORCH_DIR).crt/nvidia/cu13/include/crt/host_config.h
	cp -r $(TORCH_DIR).crt/nvidia/cu13/include/crt $(TORCH_DIR)/nvidia/cu13/include/
	rm -rf $(TORCH_DIR).crt
	touch $(CRT_STAMP)

$(HEADERS_STAMP):
	$(PYTHON) scripts/wheel-headers.py $(CUDA_HEADERS) $(CUDA_HEADER_WHEELS)
	test -f $(CUDA_HEADERS)/nvidia/nccl/include/nccl.h
	touch $(HEADERS_STAMP)

# The same wheel with all its CUDA dependencies (cuDNN, cuBLAS, ...) into the same folder: the binary
# then finds libtorch_cuda.so and its libraries and runs on the GPU. Idempotent.
setup-gpu: setup
	$(PIP) --target $(TORCH_DIR) --upgrade torch==$(TORCH_VERSION)
	touch $(TORCH_STAMP)

build: setup
	$(CARGO) build --bin unas

lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

test: setup test-deps
	$(CARGO) test --no-fail-fast

# The TensorBoard test (tests/tensorboard.rs) reads every run folder with TensorBoard's own reader
# (EventAccumulator), from a Python environment of its own (.deps/tb-venv, only for tests): created in a
# temporary folder and renamed once the reader imports, so an interrupted install is never used. Only
# ever called as tb-venv/bin/python (its scripts' #! lines name the temporary folder).
TB_VENV ?= .deps/tb-venv
TB_STAMP := $(TB_VENV)/.installed
TENSORBOARD_VERSION := 2.21.0
TB_CHECK := from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# $(call venv,FOLDER,REQUIREMENT,CHECK): a Python environment of its own in FOLDER with REQUIREMENT from
# PyPI, created in FOLDER.partial and renamed once the Python code in the variable named CHECK runs.
define venv
	rm -rf $(1).partial
	$(PYTHON) -m venv $(1).partial
	$(1).partial/bin/python -m pip install --disable-pip-version-check --no-input \
	  --progress-bar off --no-cache-dir $(2)
	$(1).partial/bin/python -c '$($(3))'
	rm -rf $(1) && mv $(1).partial $(1)
endef

$(TB_STAMP):
	@echo "installing tensorboard==$(TENSORBOARD_VERSION) (the reader for tests/tensorboard.rs) into $(TB_VENV)"
	$(call venv,$(TB_VENV),tensorboard==$(TENSORBOARD_VERSION),TB_CHECK)
	touch $(TB_STAMP)

# The browser test of the HTML report (tests/report.rs) opens every page in a headless Chromium.
# Installed from Debian's registry only when it is missing and we are root; an unreachable registry
# never fails the build (the test then skips its browser part with a loud message).
test-deps: $(TB_STAMP)
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/sbin/munged ] && command -v sbatch >/dev/null \
	  || missing="$$missing slurmctld slurmd slurm-client munge"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing for the report's browser test and the Slurm test (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
	      || echo "WARNING: could not install$$missing (is apt's registry reachable?): those tests will say they were skipped"; \
	  else \
	    echo "WARNING:$$missing missing and we are not root: the browser and Slurm tests will say they were skipped"; \
	  fi; \
	fi

# The suite at a tier (TIER=smoke|quick|paper; DATA=the datasets' folder for quick and paper), in this
# process or on WORKERS worker processes (or one per GPU of GPUS), then the whole report; the last line
# printed is the index page. TIER=paper builds and runs a release binary. Missing datasets stop
# `unas reproduce` before any work, saying what to fetch.
TIER ?= smoke
DATA ?=
WORKERS ?=
GPUS ?=
REPRO_UNAS := $(if $(filter paper,$(TIER)),target/release/unas,$(UNAS))
RANKS ?=
REPRODUCE_FLAGS := --tier $(TIER) $(if $(DATA),--data $(DATA)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(GPUS),--gpus $(GPUS)) $(if $(RANKS),--ranks-per-run $(RANKS))
reproduce: $(if $(filter paper,$(TIER)),build-release,build)
	status=0; $(REPRO_UNAS) reproduce $(REPRODUCE_FLAGS) || status=$$?; $(REPRO_UNAS) report; exit $$status

build-release: setup
	$(CARGO) build --release --bin unas

# Prints every run's status, then (last line) the path of the report's index page.
report: build
	$(UNAS) report

# `make bench`: the cargo benchmarks, then ours against our PyTorch eager reference
# (bench/reference.py), run alternately by bench/compare.py, which appends the ratios to BENCHMARKS.md.
# The reference needs the full torch wheel in a Python environment of its own (.deps/bench-venv, only
# for benchmarks): created in a temporary folder and renamed once torch imports, so an interrupted
# install is never used. It is only ever called as bench-venv/bin/python (its scripts' #! lines name
# the temporary folder). The paper tier runs a release build, so this does too unless BENCH_PROFILE=dev.
BENCH_VENV := .deps/bench-venv
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_PYTHON := $(BENCH_VENV)/bin/python
BENCH_CHECK := import torch; assert torch.__version__.startswith("$(TORCH_VERSION)"), torch.__version__
BENCH_PROFILE ?= release
BENCH_ARGS ?=
ifeq ($(BENCH_PROFILE),release)
BENCH_CARGO_FLAGS := --release
BENCH_UNAS := target/release/unas
else ifeq ($(BENCH_PROFILE),dev)
BENCH_CARGO_FLAGS :=
BENCH_UNAS := target/debug/unas
else
$(error BENCH_PROFILE must be release or dev, got '$(BENCH_PROFILE)')
endif

.PHONY: bench-venv bench-unas parity

bench-venv: $(BENCH_STAMP)

$(BENCH_STAMP):
	@echo "installing torch==$(TORCH_VERSION) (full wheel, for the PyTorch reference) into $(BENCH_VENV)"
	$(call venv,$(BENCH_VENV),torch==$(TORCH_VERSION),BENCH_CHECK)
	$(BENCH_PYTHON) -c 'import torch, sys; assert sys.prefix.endswith("bench-venv"), sys.prefix'
	touch $(BENCH_STAMP)

bench-unas: setup
	@echo "building unas, $(BENCH_PROFILE) profile ($(BENCH_UNAS))"
	$(CARGO) build $(BENCH_CARGO_FLAGS) --bin unas

bench: setup bench-venv bench-unas
	$(CARGO) bench --bench config
	$(BENCH_PYTHON) bench/compare.py --unas $(BENCH_UNAS) --python $(BENCH_PYTHON) \
	  --profile $(BENCH_PROFILE) $(BENCH_ARGS)

# `make parity`: tests/parity_torch.rs (ignored in `make test`) runs `unas diagnose parity-torch` for
# both spaces (darts, proxyless) × six estimators (gsm, st_gsm, darts, reinforce, rebar, relax) and
# fails on any number beyond its bound (16 min on the 2-core machine: 12 runs of 40–110 s and the build).
parity: setup bench-venv
	$(CARGO) test --test parity_torch -- --ignored --nocapture

# The smoke suite from scratch with --workers 1, then with --workers 2, in one call (fresh results each).
bench-workers: build
	scripts/bench-workers.sh $(UNAS)

# experiments/paper/c10-darts-unas.yaml at the smoke tier with and without event files, alternated.
bench-tensorboard: build
	scripts/bench-tensorboard.sh $(UNAS)

bench-ranks: build
	scripts/bench-ranks.sh $(UNAS)

clean:
	$(CARGO) clean
