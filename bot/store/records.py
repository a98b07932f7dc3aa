"""The values the conversation store writes and reads: the dialogue state, a message to
write, a message row as read back (JSON columns decoded), and the rows' timestamps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def now_timestamp() -> str:
    """The current UTC time as every row stores it (ISO 8601, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class DialogueState:
    """What the dialogue manager remembers about a conversation between turns."""

    slots: dict[str, str] = field(default_factory=dict)
    active_intent: str | None = None  # the task being worked on
    awaiting_slot: str | None = None  # the slot the bot last asked for
    failures: int = 0  # consecutive turns the bot could not help with
    handed_off: bool = False
    clarify_options: list[str] = field(default_factory=list)  # intents offered as buttons

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> DialogueState:
        data = json.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class MessageRecord:
    """A message to write. `sources` are (unit id, score) pairs."""

    role: str
    text: str
    intent: str | None = None
    confidence: float | None = None
    out_of_scope: bool | None = None
    action: str | None = None
    sources: tuple[tuple[str, float], ...] = ()
    composer: str | None = None
    note: str | None = None
    latency_ms: float | None = None
    edited_from: str | None = None  # agent messages: the bot suggestion the agent edited
    client_message_id: str | None = None  # customer messages: the channel's id for the message
    buttons: tuple[str, ...] = ()  # bot messages: quick replies offered with it
    agent_id: int | None = None  # agent messages: who sent it
    suggestion_id: int | None = None  # agent messages: the suggestion it started from


def message_row(conversation_id: str, turn: int, m: MessageRecord) -> dict[str, Any]:
    """The `messages` row that stores `m` as the conversation's turn `turn`."""
    return {
        "conversation_id": conversation_id,
        "turn": turn,
        "role": m.role,
        "text": m.text,
        "intent": m.intent,
        "confidence": m.confidence,
        "out_of_scope": None if m.out_of_scope is None else int(m.out_of_scope),
        "action": m.action,
        "sources": json.dumps([{"id": i, "score": round(s, 4)} for i, s in m.sources]),
        "composer": m.composer,
        "note": m.note,
        "latency_ms": m.latency_ms,
        "edited_from": m.edited_from,
        "client_message_id": m.client_message_id,
        "buttons": json.dumps(list(m.buttons)) if m.buttons else None,
        "agent_id": m.agent_id,
        "suggestion_id": m.suggestion_id,
        "created_at": now_timestamp(),
    }


def decoded_message(row: dict[str, Any]) -> dict[str, Any]:
    """A message row with its JSON columns (sources, buttons) decoded."""
    decoded = {**row, "sources": json.loads(row["sources"] or "[]")}
    if "buttons" in row:
        decoded["buttons"] = json.loads(row["buttons"] or "[]")
    return decoded
