"""The store tests' fixture: an open store, in a fresh SQLite file and in a fresh database
of a real PostgreSQL server (tests/postgres.py), so that both back ends pass the same tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store import ConversationStore


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConversationStore]:
    target = tmp_path / "store.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with ConversationStore(target).open() as s:
        yield s
