"""Shared fixtures: the demo workspace is built once per test session, by the real CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import REPO, SHARED, run_csbot

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
