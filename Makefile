# aesthetic4k developer commands. `make test` installs first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is named explicitly so pip takes the pinned build instead of resolving a newer one.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?= -n 2

.PHONY: install test bench demo leaderboard sample-stats clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

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

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
