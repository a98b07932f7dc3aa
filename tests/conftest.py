"""Shared fixtures: the demo workspace is built once per test session, by the real CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import REPO, SHARED, run_csbot

pytest_plugins = ["tests.postgres"]

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory) -> Path:
    workspace = tmp_path_factory.mktemp("demo") / "ws"
    run_csbot("build", "--data", str(REPO / "data"), workspace=workspace)
    return workspace


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/datasets is absent")
    return SHARED


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A GPT-2 checkpoint the test saves itself: the route a user with `gpt2` on disk takes."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from finetune.model import load_corpus_texts
    from finetune.tokenizer import train_tokenizer

    path = tmp_path_factory.mktemp("ck") / "tiny-gpt2"
    tok = train_tokenizer(load_corpus_texts(REPO / "data")[:100], 800)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=192, vocab_size=len(tok))).save_pretrained(
        path
    )
    tok.save_pretrained(path)
    return path
