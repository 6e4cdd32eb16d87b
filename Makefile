# aesthetic4k developer commands. `make test` installs first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Exact versions of every dependency of '.[all,dev]', torch included, for CPython 3.11 on Linux x86_64:
# what `make install` and CI install, and pip constraints for other installs (pip install -c ...).
# `make lock` refreshes it from setup.cfg's ranges, keeping every pin that still fits;
# `make lock LOCK_ARGS=--upgrade` (or `LOCK_ARGS='--upgrade-package opencv-python'`) moves pins on.
LOCK := requirements/lock.txt
PINS := requirements/pins.txt
LOCK_ARGS ?=
PIP_VERSION ?= 26.3
PYTEST_ARGS ?= -n 2

.PHONY: install lock test bench demo leaderboard sample-stats sample-baselines clean

install: $(STAMP)

# the lock alone decides every version (--no-deps); pip check proves it complete and consistent
$(STAMP): $(LOCK) setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q pip==$(PIP_VERSION)
	$(BIN)/python -m pip install -q --no-deps -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q "$$(grep '^uv==' $(LOCK) | cut -d' ' -f1)"
	$(BIN)/uv pip compile setup.cfg --all-extras --constraint $(PINS) --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" \
	    $(LOCK_ARGS) --output-file $(LOCK)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# the CUDA paths measured on a GPU (docs/gpu-check.md); GPU_CHECK_ARGS="--device cpu --quick" on a CPU
.PHONY: gpu-check
gpu-check: $(STAMP)
	$(BIN)/python -m benchmarks.gpu_check --isolate $(GPU_CHECK_ARGS)

demo: $(STAMP)
	$(BIN)/a4k-eval --generator upscale --dataset sample --out demo-results.csv
	$(BIN)/a4k-eval --generator reference --dataset sample --out demo-results.csv

leaderboard: $(STAMP)
	$(BIN)/a4k-leaderboard

# the reference statistics of the offline sample set that ship with the package (--reference sample)
SAMPLE_STATS := aesthetic4k/data/sample_stats/sample-2048-paper.npz
sample-stats: $(STAMP)
	mkdir -p $(dir $(SAMPLE_STATS))
	$(BIN)/a4k-eval --generator reference --dataset sample --size 2048 --metrics fid,kid,patch_fid,patch_kid \
	    --save-reference-stats $(SAMPLE_STATS) --out "$$(mktemp -d)/run.csv"

# the README's CI-loop baseline: the upscale and reference rows of the sample set, written afresh
SAMPLE_BASELINES := leaderboards/results/sample-baselines.csv
sample-baselines: $(STAMP)
	tmp="$$(mktemp -d)" && \
	$(BIN)/a4k-eval --generator upscale --dataset sample --out "$$tmp/baselines.csv" --no-progress && \
	$(BIN)/a4k-eval --generator reference --dataset sample --out "$$tmp/baselines.csv" --no-progress && \
	mv "$$tmp/baselines.csv" $(SAMPLE_BASELINES) && rm -rf "$$tmp"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
