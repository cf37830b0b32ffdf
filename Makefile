# Two commands on a fresh machine: `make demo` (set up, then the main job) and `make test` (set up, then the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0

.PHONY: setup demo test bench bench-gpu graphviz clean

setup: $(VENV)/.installed

# torch goes in first, pinned: it is the CPU build already on disk, and with it in place the project's own
# `torch>=2.4` is satisfied, so pip never resolves (and downloads) a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[all]'
	touch $@

# Graphviz's `dot` draws the diagrams. Install it when missing and we may; otherwise say how.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's graphviz (for diagrams)"; \
	    (apt-get install -y -qq graphviz >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq graphviz >/dev/null; }); \
	  else \
	    echo "note: Graphviz's 'dot' is missing; diagrams need it: sudo apt-get install graphviz (or brew install graphviz)"; \
	  fi; }

demo: setup graphviz
	$(BIN)/circuits demo

# The checkers first (ruff, mypy: configured in pyproject.toml), then the suite.
test: setup graphviz
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# circuit-catalog against auto-circuit (its own venv, .venv-autocircuit, made on first use) on this CPU; writes
# benchmarks/results/cpu.json. bench-gpu is the one command for the GPU machine (see benchmarks/gpu.sh).
bench: setup
	PYTHON=$(PYTHON) OURS_PY=$(BIN)/python bash benchmarks/cpu.sh

bench-gpu:
	bash benchmarks/gpu.sh

clean:
	rm -rf $(VENV) build *.egg-info circuits.db demo
