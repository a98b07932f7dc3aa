"""The agent-panel tests' fixtures: a real store (a SQLite file in a temp dir, and a fresh
database on a real PostgreSQL server: every test runs on both), a hand-moved clock,
and agents (alice, bob: role agent; boss: admin) whose password hash is computed once per
test session: scrypt takes tens of milliseconds on purpose, and most tests need agents,
not hashing (test_accounts adds its own through `AgentAccounts.add`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.agents import Agent, AgentAccounts, ConversationHandling, hash_password
from bot.agents.clock import timestamp
from bot.store import ConversationStore
from tests.bot.agents.helpers import FakeClock

PASSWORD = "correct horse battery"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConversationStore]:
    target = tmp_path / "store.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with ConversationStore(target).open() as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def accounts(store: ConversationStore, clock: FakeClock) -> AgentAccounts:
    return AgentAccounts(store, clock=clock)


@pytest.fixture
def handling(store: ConversationStore, clock: FakeClock) -> ConversationHandling:
    return ConversationHandling(store, clock=clock)


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def add_agent(store: ConversationStore, accounts: AgentAccounts, clock: FakeClock, password_hash: str):
    """Adds an agent whose password is PASSWORD (the row `AgentAccounts.add` writes)."""

    def add(name: str, role: str = "agent") -> Agent:
        now = timestamp(clock())
        store.db.execute(
            "insert into agents (name, role, password_hash, disabled, created_at, password_changed_at) "
            "values (?, ?, ?, 0, ?, ?)",
            [name, role, password_hash, now, now],
        )
        return accounts.get(name)

    return add


@pytest.fixture
def alice(add_agent) -> Agent:
    return add_agent("alice")


@pytest.fixture
def bob(add_agent) -> Agent:
    return add_agent("bob")


@pytest.fixture
def boss(add_agent) -> Agent:
    return add_agent("boss", "admin")
