# Two commands on a fresh machine: `make run` (the default study) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all

.PHONY: run test lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel; an unpinned torch would pull a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES)

test: $(STAMP)
	PATH="$(BIN):$$PATH" pytest

lint: $(STAMP)
	PATH="$(BIN):$$PATH" snakemake --lint
	PATH="$(BIN):$$PATH" snakefmt --check Snakefile rules/

format: $(STAMP)
	PATH="$(BIN):$$PATH" snakefmt Snakefile rules/

clean:
	rm -rf results/data results/*/ .snakemake

# The CUDA path on one GPU (benchmarks/gpu_check.py, issue 14): `make gpu-check OUT=folder`, with the
# machine's own python and torch (not the venv's CPU wheel); DEVICE=cpu runs the smoke mode.
OUT ?= results/gpu_check
DEVICE ?= cuda
PARTS ?= a,b,c,d,e
.PHONY: gpu-check
gpu-check:
	PYTHONUNBUFFERED=1 $(PYTHON) benchmarks/gpu_check.py $(OUT) --device $(DEVICE) --parts $(PARTS)
