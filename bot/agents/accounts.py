"""Agent accounts: who may sign in to the panel, with which role, and their passwords.

Names are case-insensitive (stored lower-case). Disabling an agent or resetting their
password ends their sessions at once, in the same transaction, so a leaked or departed
account stops working without waiting for its sessions to expire."""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from typing import Any

from bot.agents.clock import Clock, timestamp, utc_now
from bot.agents.errors import DuplicateAgentError, InvalidAgentInputError, SignInFailedError, UnknownAgentError
from bot.agents.passwords import burn_password_check, check_password_strength, hash_password, verify_password
from bot.store import ConversationStore
from bot.store.errors import ConstraintError

ROLES = ("agent", "admin")
_NAME = re.compile(r"[a-z0-9._-]{1,64}")


def normalize_name(name: object) -> str:
    """`name` lower-cased, or InvalidAgentInputError saying what a name may be."""
    if not isinstance(name, str):
        raise InvalidAgentInputError(f"an agent name is text, got {type(name).__name__}")
    lowered = name.lower()
    if not _NAME.fullmatch(lowered):
        raise InvalidAgentInputError(
            f"agent name {name!r} is not allowed: use 1 to 64 characters of a-z, 0-9, '.', '_' and '-'"
        )
    return lowered


@dataclass(frozen=True)
class Agent:
    """A human agent as the panel sees one (never the password hash)."""

    id: int
    name: str
    role: str  # agent | admin
    disabled: bool
    created_at: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": self.created_at,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Agent:
        return cls(
            id=int(row["id"]),
            name=row["name"],
            role=row["role"],
            disabled=bool(row["disabled"]),
            created_at=row["created_at"],
        )


class AgentAccounts:
    """The `agents` table: add, look up, list, disable, enable, reset a password, check one."""

    def __init__(self, store: ConversationStore, clock: Clock = utc_now):
        self.store = store
        self.clock = clock

    def add(self, name: str, password: str, role: str = "agent") -> Agent:
        """A new enabled agent. Raises InvalidAgentInputError (name, role, weak password)
        or DuplicateAgentError."""
        name = normalize_name(name)
        if role not in ROLES:
            raise InvalidAgentInputError(f"role {role!r} is not one of {', '.join(ROLES)}")
        check_password_strength(password)
        password_hash = hash_password(password)  # before the lock: scrypt takes a while
        now = timestamp(self.clock())
        try:
            with self.store._write_transaction():
                if self._row(name) is not None:
                    raise DuplicateAgentError(name)
                self.store.db.execute(
                    "insert into agents (name, role, password_hash, disabled, created_at, password_changed_at) "
                    "values (?, ?, ?, 0, ?, ?)",
                    [name, role, password_hash, now, now],
                )
        except ConstraintError:  # added by another connection between the check and the insert
            raise DuplicateAgentError(name) from None
        return self.get(name)

    def get(self, name: str) -> Agent:
        row = self._row(name.lower()) if isinstance(name, str) else None
        if row is None:
            raise UnknownAgentError(str(name))
        return Agent.from_row(row)

    def by_id(self, agent_id: int) -> Agent:
        rows = list(self.store.db.query("select * from agents where id = ?", [agent_id]))
        if not rows:
            raise UnknownAgentError(f"#{agent_id}")
        return Agent.from_row(rows[0])

    def list(self) -> builtins.list[Agent]:
        """Every agent, by name."""
        return [Agent.from_row(r) for r in self.store.db.query("select * from agents order by name")]

    def disable(self, name: str) -> Agent:
        """Stop the agent signing in; their sessions end now."""
        return self._set_disabled(name, True)

    def enable(self, name: str) -> Agent:
        return self._set_disabled(name, False)

    def reset_password(self, name: str, password: str) -> Agent:
        """Give the agent a new password; their sessions end now."""
        check_password_strength(password)
        password_hash = hash_password(password)
        agent = self.get(name)
        with self.store._write_transaction():
            self.store.db.execute(
                "update agents set password_hash = ?, password_changed_at = ? where id = ?",
                [password_hash, timestamp(self.clock()), agent.id],
            )
            self._end_sessions(agent.id)
        return self.by_id(agent.id)

    def authenticate(self, name: str, password: str) -> Agent:
        """The agent when the name and password match an enabled account, else
        SignInFailedError (the same for all three failures, taking the same time).
        Throttling is the sessions' job."""
        row = self._row(name.lower()) if isinstance(name, str) and len(name) <= 64 else None
        if row is None:
            burn_password_check(password)
            raise SignInFailedError()
        if not verify_password(password, row["password_hash"]) or row["disabled"]:
            raise SignInFailedError()
        return Agent.from_row(row)

    def _set_disabled(self, name: str, disabled: bool) -> Agent:
        agent = self.get(name)
        with self.store._write_transaction():
            self.store.db.execute("update agents set disabled = ? where id = ?", [int(disabled), agent.id])
            if disabled:
                self._end_sessions(agent.id)
        return self.by_id(agent.id)

    def _end_sessions(self, agent_id: int) -> None:
        self.store.db.execute("delete from agent_sessions where agent_id = ?", [agent_id])

    def _row(self, name: str) -> dict[str, Any] | None:
        rows = list(self.store.db.query("select * from agents where name = ?", [name]))
        return rows[0] if rows else None
