"""Agent accounts: names (case-insensitive, checked), roles, duplicates, password checks
that say the same for every failure, and disabling or resetting ending sessions."""

from __future__ import annotations

import pytest

from bot.agents import (
    AgentAccounts,
    AgentSessions,
    DuplicateAgentError,
    InvalidAgentInputError,
    NotSignedInError,
    SignInFailedError,
    UnknownAgentError,
)
from tests.bot.agents.conftest import PASSWORD


def test_add_stores_a_lower_case_name_a_role_and_a_hash(accounts: AgentAccounts, store) -> None:
    agent = accounts.add("Alice.B-2_x", PASSWORD, role="admin")
    assert (agent.name, agent.role, agent.disabled, agent.is_admin) == ("alice.b-2_x", "admin", False, True)
    row = next(iter(store.db.query("select * from agents")))
    assert row["password_hash"].startswith("scrypt$") and PASSWORD not in row["password_hash"]
    assert row["created_at"] == row["password_changed_at"] == agent.created_at
    assert accounts.get("ALICE.B-2_X") == agent == accounts.by_id(agent.id)


@pytest.mark.parametrize("name", ["", "a b", "ann@example.com", "x" * 65, "émile", "../etc"])
def test_a_name_outside_the_allowed_characters_is_refused_saying_what_is_allowed(accounts, name) -> None:
    with pytest.raises(InvalidAgentInputError, match=r"1 to 64 characters of a-z, 0-9"):
        accounts.add(name, PASSWORD)
    assert accounts.list() == []


def test_role_must_be_agent_or_admin_and_the_password_strong(accounts) -> None:
    with pytest.raises(InvalidAgentInputError, match="agent, admin"):
        accounts.add("carol", PASSWORD, role="root")
    with pytest.raises(InvalidAgentInputError, match="at least 10"):
        accounts.add("carol", "short")
    assert accounts.list() == []


def test_a_second_agent_with_the_same_name_in_any_case_is_a_duplicate(accounts, alice) -> None:
    with pytest.raises(DuplicateAgentError, match="'alice' exists already"):
        accounts.add("ALICE", "another long password")
    assert [a.name for a in accounts.list()] == ["alice"]


def test_list_is_by_name(accounts) -> None:
    for name in ("zoe", "adam", "mia"):
        accounts.add(name, PASSWORD)
    assert [a.name for a in accounts.list()] == ["adam", "mia", "zoe"]


def test_unknown_names_and_ids_are_typed_errors(accounts) -> None:
    with pytest.raises(UnknownAgentError, match="csbot users list"):
        accounts.get("nobody")
    with pytest.raises(UnknownAgentError):
        accounts.by_id(99)
    with pytest.raises(UnknownAgentError):
        accounts.disable("nobody")


def test_authenticate_says_the_same_for_unknown_wrong_and_disabled(accounts, alice) -> None:
    assert accounts.authenticate("Alice", PASSWORD) == alice
    messages = []
    for name, password in [("nobody", PASSWORD), ("alice", "wrong password!"), ("x" * 500, PASSWORD)]:
        with pytest.raises(SignInFailedError) as caught:
            accounts.authenticate(name, password)
        messages.append(str(caught.value))
    accounts.disable("alice")
    with pytest.raises(SignInFailedError) as caught:
        accounts.authenticate("alice", PASSWORD)
    messages.append(str(caught.value))
    assert set(messages) == {"wrong name or password"}


def test_disable_ends_the_agents_sessions_and_enable_lets_them_sign_in_again(store, accounts, alice, bob) -> None:
    sessions = AgentSessions(store, accounts)
    alice_token, _ = sessions.sign_in("alice", PASSWORD, "10.0.0.1")
    bob_token, _ = sessions.sign_in("bob", PASSWORD, "10.0.0.2")
    assert accounts.disable("alice").disabled
    with pytest.raises(NotSignedInError):
        sessions.authenticate(alice_token)
    assert sessions.authenticate(bob_token).agent == bob  # only alice's sessions ended
    with pytest.raises(SignInFailedError):
        sessions.sign_in("alice", PASSWORD, "10.0.0.1")
    assert not accounts.enable("alice").disabled
    token, info = sessions.sign_in("alice", PASSWORD, "10.0.0.1")
    assert sessions.authenticate(token).agent.name == "alice" == info.agent.name


def test_reset_password_switches_the_password_and_ends_sessions(store, accounts, alice, clock) -> None:
    sessions = AgentSessions(store, accounts, clock=clock)
    token, _ = sessions.sign_in("alice", PASSWORD, None)
    clock.advance(minutes=5)
    accounts.reset_password("alice", "a brand new passphrase")
    with pytest.raises(NotSignedInError, match="sign in again"):
        sessions.authenticate(token)
    with pytest.raises(SignInFailedError):
        accounts.authenticate("alice", PASSWORD)
    assert accounts.authenticate("alice", "a brand new passphrase") == alice
    row = next(iter(store.db.query("select created_at, password_changed_at from agents")))
    assert row["password_changed_at"] > row["created_at"]


def test_reset_password_keeps_the_old_one_when_the_new_one_is_weak(accounts, alice) -> None:
    with pytest.raises(InvalidAgentInputError):
        accounts.reset_password("alice", "weak")
    assert accounts.authenticate("alice", PASSWORD) == alice
