"""The store tests' fixture: an open store in a fresh SQLite file."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store import ConversationStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConversationStore]:
    with ConversationStore(tmp_path / "store.db").open() as s:
        yield s
