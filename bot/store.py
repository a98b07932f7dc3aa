"""The conversation store: SQLite through sqlite-utils, in WAL mode.

Everything a conversation needs between turns lives here (messages, dialogue state,
feedback, handoffs), never in a process's memory, so any replica can take the next turn.
Each turn is written in one transaction: a crash leaves either the whole turn or nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database, Migrations

from bot.errors import CsbotError, UnknownConversationError

SCHEMA_NAME = "csbot"
migrations = Migrations(SCHEMA_NAME)


@migrations()
def m001_initial(db: Database) -> None:
    db["conversations"].create(
        {
            "id": str,
            "channel": str,
            "status": str,  # open | handoff | closed
            "state": str,  # DialogueState as JSON
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"channel", "status", "state", "created_at", "updated_at"},
    )
    db["messages"].create(
        {
            "id": int,
            "conversation_id": str,
            "turn": int,
            "role": str,  # customer | bot | agent | system
            "text": str,
            "intent": str,
            "confidence": float,
            "out_of_scope": int,
            "action": str,
            "sources": str,  # JSON list of {id, score}
            "composer": str,
            "note": str,
            "latency_ms": float,
            "created_at": str,
        },
        pk="id",
        not_null={"conversation_id", "turn", "role", "text", "created_at"},
        foreign_keys=[("conversation_id", "conversations", "id")],
    )
    db["messages"].create_index(["conversation_id", "turn"], unique=True)
    db["feedback"].create(
        {"id": int, "message_id": int, "rating": str, "comment": str, "created_at": str},
        pk="id",
        not_null={"message_id", "rating", "created_at"},
        foreign_keys=[("message_id", "messages", "id")],
    )
    db["handoffs"].create(
        {
            "id": int,
            "conversation_id": str,
            "message_id": int,
            "reason": str,
            "status": str,  # waiting | assigned | closed (the agent panel fills the rest)
            "created_at": str,
        },
        pk="id",
        not_null={"conversation_id", "reason", "status", "created_at"},
        foreign_keys=[("conversation_id", "conversations", "id"), ("message_id", "messages", "id")],
    )


@migrations()
def m002_agent_edits(db: Database) -> None:
    # the agent panel: a human agent's message that started as a bot suggestion keeps the
    # suggestion's text here (the fine-tuning pairs learn from the edited version)
    db["messages"].add_column("edited_from", str)


def _now() -> str:
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


class StoreError(CsbotError):
    pass


class ConversationStore:
    """Conversations, messages, feedback and handoffs in one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db: Database | None = None

    # -- lifecycle -----------------------------------------------------------------
    def open(self) -> ConversationStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = Database(self.path)
        # WAL lets readers (the agent panel, evaluations) work while a turn is written.
        db.enable_wal()
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 5000")
        migrations.apply(db)
        self._db = db
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> ConversationStore:
        return self if self._db is not None else self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> Database:
        if self._db is None:
            raise StoreError(f"store {self.path} is not open; call .open() first")
        return self._db

    @property
    def schema_version(self) -> int:
        """How many schema migrations are applied (bumps with every migration)."""
        return len(list(migrations.applied(self.db)))

    # -- conversations -------------------------------------------------------------
    def create_conversation(self, channel: str = "cli", conversation_id: str | None = None) -> str:
        conversation_id = conversation_id or uuid.uuid4().hex
        now = _now()
        self.db["conversations"].insert(
            {
                "id": conversation_id,
                "channel": channel,
                "status": "open",
                "state": DialogueState().to_json(),
                "created_at": now,
                "updated_at": now,
            }
        )
        return conversation_id

    def conversation_exists(self, conversation_id: str) -> bool:
        return self.db["conversations"].count_where("id = ?", [conversation_id]) > 0

    def load_state(self, conversation_id: str) -> DialogueState:
        rows = list(self.db.query("select state from conversations where id = ?", [conversation_id]))
        if not rows:
            raise UnknownConversationError(conversation_id)
        return DialogueState.from_json(rows[0]["state"])

    def record_turn(
        self,
        conversation_id: str,
        customer: MessageRecord,
        bot: MessageRecord,
        state: DialogueState,
        handoff_reason: str | None = None,
    ) -> int:
        """Write the customer message, the bot's reply, the new state and an optional
        handoff atomically. Returns the bot message id."""
        with self.db.atomic():
            rows = list(
                self.db.query(
                    "select coalesce(max(turn), -1) + 1 as next from messages where conversation_id = ?",
                    [conversation_id],
                )
            )
            turn = rows[0]["next"]
            self._insert_message(conversation_id, turn, customer)
            bot_id = self._insert_message(conversation_id, turn + 1, bot)
            status = "handoff" if state.handed_off else "open"
            updated = self.db.execute(
                "update conversations set state = ?, status = ?, updated_at = ? where id = ?",
                [state.to_json(), status, _now(), conversation_id],
            )
            if updated.rowcount != 1:
                raise UnknownConversationError(conversation_id)
            if handoff_reason:
                self.db["handoffs"].insert(
                    {
                        "conversation_id": conversation_id,
                        "message_id": bot_id,
                        "reason": handoff_reason,
                        "status": "waiting",
                        "created_at": _now(),
                    }
                )
        return bot_id

    def record_agent_message(self, conversation_id: str, text: str, edited_from: str | None = None) -> int:
        """Write a human agent's message as the conversation's next turn, in one transaction.

        `edited_from` is the bot suggestion's text when the agent edited a suggestion before
        sending it (the agent panel). Returns the message id."""
        if not isinstance(text, str) or not text.strip():
            raise StoreError("an agent message needs non-empty text")
        if edited_from is not None and not isinstance(edited_from, str):
            raise StoreError(f"edited_from must be the suggestion's text or None, got {type(edited_from).__name__}")
        with self.db.atomic():
            updated = self.db.execute(
                "update conversations set updated_at = ? where id = ?", [_now(), conversation_id]
            )
            if updated.rowcount != 1:
                raise UnknownConversationError(conversation_id)
            rows = list(
                self.db.query(
                    "select coalesce(max(turn), -1) + 1 as next from messages where conversation_id = ?",
                    [conversation_id],
                )
            )
            return self._insert_message(
                conversation_id, rows[0]["next"], MessageRecord("agent", text.strip(), edited_from=edited_from)
            )

    def _insert_message(self, conversation_id: str, turn: int, m: MessageRecord) -> int:
        table = self.db["messages"].insert(
            {
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
                "created_at": _now(),
            }
        )
        return int(table.last_pk)

    # -- reads ---------------------------------------------------------------------
    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        if not self.conversation_exists(conversation_id):
            raise UnknownConversationError(conversation_id)
        rows = self.db["messages"].rows_where(
            "conversation_id = ?", [conversation_id], order_by="turn"
        )
        return [{**r, "sources": json.loads(r["sources"] or "[]")} for r in rows]

    def iter_conversations(self) -> Iterator[dict[str, Any]]:
        yield from self.db["conversations"].rows_where(order_by="created_at")

    def iter_messages(self) -> Iterator[dict[str, Any]]:
        """Every message of every conversation, grouped by conversation (in creation
        order) and in turn order within one; `sources` decoded. One query, streamed."""
        rows = self.db.query(
            "select m.* from messages m join conversations c on c.id = m.conversation_id "
            "order by c.created_at, c.rowid, m.turn"
        )
        for r in rows:
            yield {**r, "sources": json.loads(r["sources"] or "[]")}

    def feedback_ratings(self) -> dict[int, tuple[str, ...]]:
        """message id -> its ratings ("up"/"down"), oldest first, for every rated message."""
        ratings: dict[int, list[str]] = {}
        for r in self.db.query("select message_id, rating from feedback order by id"):
            ratings.setdefault(r["message_id"], []).append(r["rating"])
        return {k: tuple(v) for k, v in ratings.items()}

    def handoffs(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        if conversation_id is None:
            return list(self.db["handoffs"].rows_where(order_by="id"))
        return list(self.db["handoffs"].rows_where("conversation_id = ?", [conversation_id], order_by="id"))

    # -- feedback ------------------------------------------------------------------
    def add_feedback(self, message_id: int, rating: str, comment: str | None = None) -> int:
        if rating not in ("up", "down"):
            raise StoreError(f"rating must be 'up' or 'down', got {rating!r}")
        rows = list(self.db.query("select role from messages where id = ?", [message_id]))
        if not rows:
            raise StoreError(f"unknown message id {message_id}")
        if rows[0]["role"] != "bot":
            raise StoreError(f"message {message_id} is a {rows[0]['role']} message; feedback is for bot replies")
        table = self.db["feedback"].insert(
            {"message_id": message_id, "rating": rating, "comment": comment, "created_at": _now()}
        )
        return int(table.last_pk)
