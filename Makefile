# Two commands on a fresh machine with python3, make and a C++ compiler: `make
# run`, `make test`. Each creates .venv when missing and (re)installs only when
# pyproject.toml or the native extension's sources (setup.py, native/) changed:
# the install builds the oneDNN extension (optional: without a compiler jconv
# installs without it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-slow bench-quick bench bench-gpu lint format docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# --no-compile: Python compiles each module the first time it is imported
# instead of every file of every wheel at install time (TensorFlow alone is
# thousands): the install takes half the CPU time.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile
# Installs a list of requirements from pyproject.toml, named by its keys.
PYPROJECT_REQUIRES = $(BIN)/python -c "import tomllib; \
	print(*tomllib.load(open('pyproject.toml', 'rb'))$(1), sep='\n')" \
	| xargs -d '\n' $(PIP_INSTALL)
# The build requirements (pyproject.toml's [build-system]) go into .venv
# itself and the package builds there (--no-build-isolation): an isolated
# build would install jaxlib a second time, 15 s of every install.
BUILD_REQUIRES := $(call PYPROJECT_REQUIRES,['build-system']['requires'])
PIP_BUILD := $(PIP_INSTALL) --no-build-isolation

NATIVE := pyproject.toml setup.py $(wildcard native/*)

$(VENV)/.run-deps: $(NATIVE) | $(BIN)/python
	$(BUILD_REQUIRES)
	$(PIP_BUILD) -e '.[experiments]'
	touch $@

$(VENV)/.test-deps: $(NATIVE) | $(BIN)/python
	$(BUILD_REQUIRES)
	$(PIP_BUILD) -e '.[experiments,test,bench]'
	touch $@ $(VENV)/.run-deps

# The docs extra (Sphinx, MyST, Furo, matplotlib) beside the package that
# autodoc imports, installed by make run's or make test's step: the package
# and its native extension are built once.
$(VENV)/.docs-deps: pyproject.toml $(VENV)/.run-deps
	$(call PYPROJECT_REQUIRES,['project']['optional-dependencies']['docs'])
	touch $@

run: $(VENV)/.run-deps
	$(BIN)/python -m experiments.learn_kernel --config=configs/learn_document_kernel.py \
		--workdir=runs/learn_document_kernel --overwrite

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two pytest worker processes: CI's machine has 2 cores. Each worker loads JAX,
# TensorFlow and PyTorch (~2 GiB), so more only on a machine with the memory.
PYTEST_WORKERS ?= 2

test: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal

test-slow: $(VENV)/.test-deps
	$(BIN)/python -m pytest -m slow

bench-quick: BENCH_CONFIG := benchmark_quick
bench: BENCH_CONFIG := benchmark
bench-quick bench: $(VENV)/.test-deps
	$(BIN)/python -m experiments.benchmark --config=configs/$(BENCH_CONFIG).py \
		--workdir=runs/$(BENCH_CONFIG) --overwrite

# On a GPU machine, with the image's own python3: no venv, nothing installed.
# Prints results.md, also when a check failed (the exit code is the run's).
GPU_MODULES := jax torch ml_collections absl tqdm
bench-gpu:
	@$(PYTHON) -c "import importlib.util as u, sys; \
		missing = [m for m in '$(GPU_MODULES)'.split() if u.find_spec(m) is None]; \
		sys.exit(f'bench-gpu installs nothing; $(PYTHON) lacks: {missing}') if missing else None"
	$(PYTHON) -m experiments.benchmark --config=configs/benchmark_gpu.py \
		--workdir=runs/benchmark_gpu --overwrite; status=$$?; \
		cat runs/benchmark_gpu/results.md 2>/dev/null; exit $$status

# The HTML in docs/_build/html, strictly: -W turns every warning (-n: an
# unresolved cross-reference too) into a failure, --keep-going reports them
# all first. -E rereads every page: an incremental build would skip the
# unchanged pages, and their warnings with them. Then every public name must
# have an API entry (docs/check_api.py).
docs: $(VENV)/.docs-deps
	$(BIN)/sphinx-build -E -W --keep-going -n -b html docs docs/_build/html
	$(BIN)/python docs/check_api.py docs/_build/html

format: $(VENV)/.test-deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build docs/_build docs/_generated \
		jconv/_onednn_ffi*.so
