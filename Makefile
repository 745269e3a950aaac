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
