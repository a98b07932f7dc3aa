"""Sign-in sessions: the cookie token is random and stored only as its hash; sessions end
at their absolute lifetime and after idling; failed sign-ins are throttled per name and
per address for a window; the CSRF token is compared exactly."""

from __future__ import annotations

import hashlib

import pytest

from bot.agents import (
    AgentAccounts,
    AgentSessions,
    CsrfError,
    NotSignedInError,
    SignInFailedError,
    SignInThrottledError,
)
from tests.bot.agents.conftest import PASSWORD


@pytest.fixture
def sessions(store, accounts: AgentAccounts, clock) -> AgentSessions:
    return AgentSessions(
        store, accounts, hours=2.0, idle_minutes=30.0, max_failures=3, failure_window_minutes=10.0, clock=clock
    )


def fail_sign_in(sessions: AgentSessions, name: str, address: str | None, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(SignInFailedError):
            sessions.sign_in(name, "wrong password!", address)


def test_sign_in_returns_a_random_token_stored_only_as_its_sha256(store, sessions, alice, clock) -> None:
    token, info = sessions.sign_in("Alice", PASSWORD, "10.0.0.1")
    other, other_info = sessions.sign_in("alice", PASSWORD, "10.0.0.1")
    assert len(token) >= 43 and token != other and info.csrf_token != other_info.csrf_token
    rows = list(store.db.query("select * from agent_sessions order by created_at"))
    assert {r["token_hash"] for r in rows} == {hashlib.sha256(t.encode()).hexdigest() for t in (token, other)}
    assert token not in str(rows)
    assert info.agent == alice and info.to_json()["agent"] == {"id": alice.id, "name": "alice", "role": "agent"}
    assert info.expires_at == rows[0]["expires_at"] > rows[0]["created_at"]


def test_authenticate_returns_the_session_and_its_csrf_token(sessions, alice) -> None:
    token, info = sessions.sign_in("alice", PASSWORD, "10.0.0.1")
    assert sessions.authenticate(token) == info


def test_a_missing_or_unknown_token_says_which(sessions, alice) -> None:
    for token in (None, ""):
        with pytest.raises(NotSignedInError) as caught:
            sessions.authenticate(token)
        assert caught.value.reason == "missing"
    with pytest.raises(NotSignedInError) as caught:
        sessions.authenticate("made-up-token")
    assert caught.value.reason == "unknown"


def test_a_session_ends_at_its_absolute_lifetime_even_when_in_use(store, sessions, alice, clock) -> None:
    token, _ = sessions.sign_in("alice", PASSWORD, None)
    for _ in range(5):  # used every 20 minutes: never idle
        clock.advance(minutes=20)
        sessions.authenticate(token)
    clock.advance(minutes=20)  # two hours after signing in
    with pytest.raises(NotSignedInError) as caught:
        sessions.authenticate(token)
    assert caught.value.reason == "expired"
    assert store.db.count_where("agent_sessions", "true") == 0  # the expired row went


def test_use_keeps_a_session_alive_and_idling_ends_it(store, sessions, alice, clock) -> None:
    token, _ = sessions.sign_in("alice", PASSWORD, None)
    clock.advance(minutes=29)
    sessions.authenticate(token)  # bumps last_seen_at
    clock.advance(minutes=29)
    sessions.authenticate(token)
    clock.advance(minutes=30, seconds=1)
    with pytest.raises(NotSignedInError) as caught:
        sessions.authenticate(token)
    assert caught.value.reason == "expired"
    with pytest.raises(NotSignedInError) as caught:
        sessions.authenticate(token)
    assert caught.value.reason == "unknown"  # deleted with the first refusal


def test_sign_out_ends_only_that_session(sessions, alice) -> None:
    first, _ = sessions.sign_in("alice", PASSWORD, None)
    second, _ = sessions.sign_in("alice", PASSWORD, None)
    sessions.sign_out(first)
    sessions.sign_out(first)  # again: nothing to do
    sessions.sign_out(None)
    with pytest.raises(NotSignedInError):
        sessions.authenticate(first)
    assert sessions.authenticate(second).agent.name == "alice"


def test_signing_in_clears_out_dead_sessions(store, sessions, alice, clock) -> None:
    sessions.sign_in("alice", PASSWORD, None)
    clock.advance(minutes=31)
    sessions.sign_in("alice", PASSWORD, None)
    assert store.db.count_where("agent_sessions", "true") == 1


def test_csrf_needs_the_sessions_exact_token(sessions, alice) -> None:
    _, info = sessions.sign_in("alice", PASSWORD, None)
    sessions.check_csrf(info, info.csrf_token)
    for header in (None, "", info.csrf_token[:-1], info.csrf_token + "x", info.csrf_token.upper()):
        if header == info.csrf_token:
            continue
        with pytest.raises(CsrfError, match="X-CSRF-Token"):
            sessions.check_csrf(info, header)


def test_failures_for_a_name_throttle_that_name_from_any_address(sessions, alice, bob, clock) -> None:
    for i in range(3):
        fail_sign_in(sessions, "alice", f"10.0.0.{i}")
        clock.advance(minutes=1)
    with pytest.raises(SignInThrottledError) as caught:
        sessions.sign_in("alice", PASSWORD, "10.0.9.9")  # the right password does not help
    # the first failure was 3 minutes ago and leaves the 10-minute window in 7 minutes
    assert caught.value.retry_after == 7 * 60
    assert sessions.sign_in("bob", PASSWORD, "10.0.9.9")[1].agent == bob  # other names are fine
    clock.advance(minutes=7)
    assert sessions.sign_in("alice", PASSWORD, "10.0.9.9")[1].agent.name == "alice"


def test_failures_from_an_address_throttle_every_name_from_it(sessions, alice, bob, clock) -> None:
    fail_sign_in(sessions, "nobody", "10.0.0.1")  # unknown names count too
    fail_sign_in(sessions, "alice", "10.0.0.1")
    clock.advance(seconds=30)
    fail_sign_in(sessions, "bob", "10.0.0.1")
    with pytest.raises(SignInThrottledError) as caught:
        sessions.sign_in("bob", PASSWORD, "10.0.0.1")
    assert caught.value.retry_after == 10 * 60 - 30
    assert "try again in 570 seconds" in str(caught.value)
    assert sessions.sign_in("bob", PASSWORD, "10.0.0.2")[1].agent == bob


def test_throttled_attempts_are_not_counted_so_the_wait_does_not_grow(sessions, alice, clock) -> None:
    fail_sign_in(sessions, "alice", None, times=3)
    for _ in range(5):
        with pytest.raises(SignInThrottledError):
            sessions.sign_in("alice", "wrong password!", None)
    clock.advance(minutes=10, seconds=1)
    assert sessions.sign_in("alice", PASSWORD, None)[1].agent.name == "alice"


def test_a_success_clears_the_names_failures(sessions, alice, clock) -> None:
    fail_sign_in(sessions, "alice", None, times=2)
    sessions.sign_in("alice", PASSWORD, None)
    fail_sign_in(sessions, "alice", None, times=2)  # two more: still under the limit of 3
    assert sessions.sign_in("alice", PASSWORD, None)[1].agent.name == "alice"


def test_failures_older_than_the_window_no_longer_count(sessions, alice, clock) -> None:
    fail_sign_in(sessions, "alice", None, times=2)
    clock.advance(minutes=10, seconds=1)
    fail_sign_in(sessions, "alice", None, times=2)
    assert sessions.sign_in("alice", PASSWORD, None)[1].agent.name == "alice"


def test_a_disabled_agent_gets_the_same_failure_and_it_counts(store, sessions, accounts, alice) -> None:
    accounts.disable("alice")
    with pytest.raises(SignInFailedError, match="wrong name or password"):
        sessions.sign_in("alice", PASSWORD, "10.0.0.1")
    assert store.db.count_where("sign_in_failures", "true") == 2  # one per name, one per address


def test_a_session_of_an_agent_disabled_behind_its_back_is_refused(store, sessions, alice) -> None:
    token, _ = sessions.sign_in("alice", PASSWORD, None)
    store.db.execute("update agents set disabled = 1")  # not through accounts: sessions stay
    with pytest.raises(NotSignedInError) as caught:
        sessions.authenticate(token)
    assert caught.value.reason == "unknown"
