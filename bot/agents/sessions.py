"""Agents' sign-in sessions: a random cookie token (only its SHA-256 is stored), a CSRF
token per session, absolute and idle expiry, and throttled sign-in attempts.

Failed sign-ins are counted per name and per client address in a sliding window: once
either reaches the limit, sign-in is refused (before the password is checked) until the
oldest counted failure leaves the window. Unknown names count too, so guessing names and
guessing passwords cost the same."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.agents.accounts import Agent, AgentAccounts
from bot.agents.clock import Clock, parse_timestamp, timestamp, utc_now
from bot.agents.errors import CsrfError, NotSignedInError, SignInFailedError, SignInThrottledError
from bot.store import ConversationStore


def token_hash(token: str) -> str:
    """What the store keeps of a session's cookie value."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    """A live session: who it is, the CSRF token every state-changing request must send,
    and when it ends at the latest."""

    agent: Agent
    csrf_token: str
    expires_at: str

    def to_json(self) -> dict[str, Any]:
        """The body of the session endpoints."""
        a = self.agent
        return {
            "agent": {"id": a.id, "name": a.name, "role": a.role},
            "csrf_token": self.csrf_token,
            "expires_at": self.expires_at,
        }


class AgentSessions:
    """Sign in, check a session, check its CSRF token, sign out."""

    def __init__(
        self,
        store: ConversationStore,
        accounts: AgentAccounts,
        *,
        hours: float = 12.0,
        idle_minutes: float = 60.0,
        max_failures: int = 5,
        failure_window_minutes: float = 15.0,
        clock: Clock = utc_now,
    ):
        self.store = store
        self.accounts = accounts
        self.lifetime = timedelta(hours=hours)
        self.idle = timedelta(minutes=idle_minutes)
        self.max_failures = max_failures
        self.window = timedelta(minutes=failure_window_minutes)
        self.clock = clock

    # -- signing in ------------------------------------------------------------------
    def sign_in(self, name: str, password: str, address: str | None) -> tuple[str, SessionInfo]:
        """A new session for a matching name and password: (the cookie token, the session).
        Raises SignInThrottledError (too many recent failures for the name or the address)
        or SignInFailedError (which is counted)."""
        now = self.clock()
        keys = self._throttle_keys(name, address)
        self._check_throttle(keys, now)
        try:
            agent = self.accounts.authenticate(name, password)
        except SignInFailedError:
            with self.store._write_transaction():
                for key in keys:
                    self.store.db.execute("insert into sign_in_failures (key, at) values (?, ?)", [key, timestamp(now)])
            raise
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires_at = timestamp(now + self.lifetime)
        with self.store._write_transaction():
            # a success clears the name's failures; old failures and dead sessions go too
            self.store.db.execute("delete from sign_in_failures where key = ?", [keys[0]])
            self.store.db.execute("delete from sign_in_failures where at <= ?", [timestamp(now - self.window)])
            self.store.db.execute(
                "delete from agent_sessions where expires_at <= ? or last_seen_at <= ?",
                [timestamp(now), timestamp(now - self.idle)],
            )
            self.store.db.execute(
                "insert into agent_sessions (token_hash, agent_id, csrf_token, created_at, last_seen_at, expires_at) "
                "values (?, ?, ?, ?, ?, ?)",
                [token_hash(token), agent.id, csrf, timestamp(now), timestamp(now), expires_at],
            )
        return token, SessionInfo(agent, csrf, expires_at)

    def _throttle_keys(self, name: object, address: str | None) -> list[str]:
        user = name.strip().lower()[:64] if isinstance(name, str) else ""
        keys = [f"user:{user}"]
        if address:
            keys.append(f"ip:{address[:100]}")
        return keys

    def _check_throttle(self, keys: list[str], now: datetime) -> None:
        since = timestamp(now - self.window)
        waits = []
        for key in keys:
            times = [
                r["at"]
                for r in self.store.db.query(
                    "select at from sign_in_failures where key = ? and at > ? order by at", [key, since]
                )
            ]
            if len(times) >= self.max_failures:
                # refused until enough failures leave the window to bring the count under the limit
                leaves = parse_timestamp(times[len(times) - self.max_failures]) + self.window
                waits.append(max(1, math.ceil((leaves - now).total_seconds())))
        if waits:
            raise SignInThrottledError(max(waits))

    # -- using a session -------------------------------------------------------------
    def authenticate(self, token: str | None) -> SessionInfo:
        """The session of a cookie token, its last use bumped. Raises NotSignedInError:
        'missing' (no token), 'expired' (past its lifetime or idle too long; the session is
        deleted), 'unknown' (signed out, ended, or an agent now disabled)."""
        if not token or not isinstance(token, str):
            raise NotSignedInError("missing")
        hashed = token_hash(token)
        rows = list(
            self.store.db.query(
                "select s.csrf_token, s.last_seen_at, s.expires_at, a.* from agent_sessions s "
                "join agents a on a.id = s.agent_id where s.token_hash = ?",
                [hashed],
            )
        )
        if not rows:
            raise NotSignedInError("unknown")
        row = rows[0]
        now = self.clock()
        expired = now >= parse_timestamp(row["expires_at"]) or now - parse_timestamp(row["last_seen_at"]) > self.idle
        if expired or row["disabled"]:
            self.store.db.execute("delete from agent_sessions where token_hash = ?", [hashed])
            raise NotSignedInError("expired" if expired else "unknown")
        self.store.db.execute(
            "update agent_sessions set last_seen_at = ? where token_hash = ?", [timestamp(now), hashed]
        )
        return SessionInfo(Agent.from_row(row), row["csrf_token"], row["expires_at"])

    def check_csrf(self, info: SessionInfo, header: str | None) -> None:
        """Raise CsrfError unless `header` is the session's CSRF token (constant-time compare)."""
        if not isinstance(header, str) or not header:
            raise CsrfError()
        if not hmac.compare_digest(info.csrf_token.encode("utf-8"), header.encode("utf-8")):
            raise CsrfError()

    def sign_out(self, token: str | None) -> None:
        """End the session of `token` (nothing to do when there is none)."""
        if token and isinstance(token, str):
            self.store.db.execute("delete from agent_sessions where token_hash = ?", [token_hash(token)])
