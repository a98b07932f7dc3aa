"""What the dialogue manager knows of business actions: something that runs an action by
name for a turn (`ActionCaller`; `bot.actions.runner.ActionRunner` is the real one), what
comes back, and how it fails. Light: no rasa-sdk here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bot.actions.routes import ActionRoutes
from bot.errors import CsbotError


class ActionFailedError(CsbotError):
    """The action could not give an answer; the message says why (logged with the turn)."""


@dataclass(frozen=True)
class ActionResult:
    """What the action said and learnt: its messages' texts, its buttons' titles, and the
    slots it set (None: forget the slot)."""

    texts: tuple[str, ...]
    buttons: tuple[str, ...] = ()
    slots: dict[str, str | None] = field(default_factory=dict)

    @property
    def reply(self) -> str:
        return "\n\n".join(self.texts)


class ActionCaller(Protocol):
    def run(
        self,
        action: str,
        *,
        sender_id: str,
        slots: Mapping[str, str | None],
        text: str,
        intent: str | None = None,
        confidence: float = 1.0,
    ) -> ActionResult: ...


@dataclass(frozen=True)
class BusinessActions:
    """The routes (which intent runs which action) and what runs them."""

    routes: ActionRoutes
    caller: ActionCaller
