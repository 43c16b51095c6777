# Every target creates .venv from nothing on first use and reuses it after.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test test-fast bench lint setup clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

dev: $(STAMP)
	$(BIN)/imagechain --dev

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/bench_import.py
	$(BIN)/python bench/bench_rpc.py
	$(BIN)/python bench/bench_state.py
	$(BIN)/python bench/bench_imaging.py

lint: $(STAMP)
	$(BIN)/ruff check node tests bench devnet

clean:
	rm -rf $(VENV)
