# unas — every set-up step lives here, so a fresh clone needs only `make test` or `make reproduce`.
#
#   make setup       install the pinned PyTorch wheel (libtorch) into .deps/ (CPU-capable, 0.54 GB)
#   make setup-gpu   the full wheel with its CUDA libraries into the same folder (2.7 GB; GPU machines)
#   make build       build the `unas` binary (dev profile, no debug info)
#   make lint        cargo fmt --check and cargo clippy (warnings are errors)
#   make test        all unit and integration tests (after test-deps)
#   make test-deps   Chromium for the browser test of the HTML report (apt, only if missing and root)
#   make reproduce   the paper suite at the smoke tier on the embedded dataset, then the report
#   make report      rebuild results/reports from results/runs
#   make bench       benchmarks (ratios against a baseline measured in the same run)
#   make clean       remove build outputs (keeps .deps and results)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
CARGO ?= cargo
# tch 0.24.0 + torch-sys 0.24.0 (Cargo.toml) are pinned in lock-step with this wheel.
TORCH_VERSION := 2.11.0
CUDA_RUNTIME := nvidia-cuda-runtime==13.0.96
CUDA_CUPTI := nvidia-cuda-cupti==13.0.85
TORCH_DIR := .deps/torch-$(TORCH_VERSION)
TORCH_STAMP := $(TORCH_DIR)/.installed
# Also set in .cargo/config.toml, so plain `cargo test` works after `make setup`.
export LIBTORCH := $(CURDIR)/$(TORCH_DIR)/torch
UNAS := target/debug/unas
PIP := $(PYTHON) -m pip install --disable-pip-version-check --no-input --progress-bar off

.PHONY: setup setup-gpu build build-release lint test test-deps reproduce report bench clean

setup: $(TORCH_STAMP)

# libtorch_cpu.so needs libcudart.so.13 and libcupti.so.13 even on a CPU, hence the two small CUDA
# wheels. Installed into a temporary folder and renamed, so an interrupted install is never used.
$(TORCH_STAMP):
	@echo "installing torch==$(TORCH_VERSION) (libtorch for tch) into $(TORCH_DIR)"
	rm -rf $(TORCH_DIR).partial
	$(PIP) --no-deps --target $(TORCH_DIR).partial torch==$(TORCH_VERSION) $(CUDA_RUNTIME) $(CUDA_CUPTI)
	test -f $(TORCH_DIR).partial/torch/lib/libtorch_cpu.so
	rm -rf $(TORCH_DIR) && mv $(TORCH_DIR).partial $(TORCH_DIR)
	touch $(TORCH_STAMP)

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

# The browser test of the HTML report (tests/report.rs) opens every page in a headless Chromium.
# Installed from Debian's registry only when it is missing and we are root; an unreachable registry
# never fails the build (the test then skips its browser part with a loud message).
test-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium for the browser test of the report (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	      || echo "WARNING: could not install chromium (is apt's registry reachable?): the browser test will be skipped"; \
	  else \
	    echo "WARNING: /usr/bin/chromium is missing and we are not root: the browser test will be skipped"; \
	  fi; \
	fi

# The suite at a tier (TIER=smoke|quick|paper; DATA=the datasets' folder for quick and paper), then
# the whole report; the last line printed is the index page. TIER=paper builds and runs a release
# binary. Missing datasets stop `unas reproduce` before any work, saying what to fetch.
TIER ?= smoke
DATA ?=
REPRO_UNAS := $(if $(filter paper,$(TIER)),target/release/unas,$(UNAS))
reproduce: $(if $(filter paper,$(TIER)),build-release,build)
	status=0; $(REPRO_UNAS) reproduce --tier $(TIER) $(if $(DATA),--data $(DATA)) || status=$$?; $(REPRO_UNAS) report; exit $$status

build-release: setup
	$(CARGO) build --release --bin unas

# Prints every run's status, then (last line) the path of the report's index page.
report: build
	$(UNAS) report

bench: setup
	$(CARGO) bench --bench config

clean:
	$(CARGO) clean
