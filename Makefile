# Two commands on a fresh machine with python3 and make: `make run`, `make test`.
# Each creates .venv when missing and (re)installs only when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-slow bench-quick bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[experiments]'
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[experiments,test,bench]'
	touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	$(BIN)/python -m experiments.learn_kernel --config=configs/learn_document_kernel.py \
		--workdir=runs/learn_document_kernel --overwrite

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

test-slow: $(VENV)/.test-deps
	$(BIN)/python -m pytest -m slow

bench-quick: BENCH_CONFIG := benchmark_quick
bench: BENCH_CONFIG := benchmark
bench-quick bench: $(VENV)/.test-deps
	$(BIN)/python -m experiments.benchmark --config=configs/$(BENCH_CONFIG).py \
		--workdir=runs/$(BENCH_CONFIG) --overwrite

format: $(VENV)/.test-deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
