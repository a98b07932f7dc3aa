"""The conversation store: SQLite through sqlite-utils, in WAL mode.

Everything a conversation needs between turns lives here (messages, dialogue state,
feedback, handoffs), never in a process's memory, so any replica can take the next turn.
Each turn is written in one transaction: a crash leaves either the whole turn or nothing.
"""

from __future__ import annotations

import hmac
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database, Migrations

from bot.errors import CsbotError, UnknownConversationError
from retrieval.entities import redact_card_numbers

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


@migrations()
def m003_web_channel(db: Database) -> None:
    # the HTTP channel: a customer message may carry the client's id for it, so that a
    # message re-sent by the widget's offline queue finds its stored turn instead of
    # taking a second one (unique per conversation; NULLs do not collide in SQLite)
    db["messages"].add_column("client_message_id", str)
    db["messages"].create_index(
        ["conversation_id", "client_message_id"], unique=True, index_name="messages_client_message_id"
    )
    # quick replies offered with a bot message (JSON list), so a reloaded widget shows them
    db["messages"].add_column("buttons", str)
    # customer satisfaction at the end of a conversation (1 = very bad ... 5 = very good)
    db["csat"].create(
        {"id": int, "conversation_id": str, "score": int, "comment": str, "created_at": str},
        pk="id",
        not_null={"conversation_id", "score", "created_at"},
        foreign_keys=[("conversation_id", "conversations", "id")],
    )


@migrations()
def m004_public_access(db: Database) -> None:
    # a web conversation's access token, as its SHA-256 (the token itself is never stored);
    # NULL for conversations that the public API never serves (CLI, platform channels)
    db["conversations"].add_column("token_hash", str)
    # one rating per message and one CSAT per conversation: the latest wins, so a client
    # cannot stack ratings (keep the newest of any earlier duplicates)
    db.execute("delete from feedback where id not in (select max(id) from feedback group by message_id)")
    db["feedback"].create_index(["message_id"], unique=True, index_name="feedback_one_per_message")
    db["feedback"].add_column("author", str)  # customer | agent: who rated it
    # live event streams look up handoffs by conversation once per poll
    db["handoffs"].create_index(["conversation_id"], index_name="handoffs_by_conversation")
    db.execute("delete from csat where id not in (select max(id) from csat group by conversation_id)")
    db["csat"].create_index(["conversation_id"], unique=True, index_name="csat_one_per_conversation")
    # card numbers are kept as their last four digits from now on: mask the ones that
    # customers' messages stored before (the dialogue state re-masks its slot on load)
    for row in list(db.query("select id, text from messages where role = 'customer'")):
        masked = redact_card_numbers(row["text"])
        if masked != row["text"]:
            db.execute("update messages set text = ? where id = ?", [masked, row["id"]])


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
    client_message_id: str | None = None  # customer messages: the channel's id for the message
    buttons: tuple[str, ...] = ()  # bot messages: quick replies offered with it


class StoreError(CsbotError):
    pass


class UnknownMessageError(StoreError):
    def __init__(self, message_id: int):
        self.message_id = message_id
        super().__init__(f"unknown message id {message_id}")


class NotABotMessageError(StoreError):
    """Feedback names a customer, agent or system message; only bot replies are rated."""

    def __init__(self, message_id: int, role: str):
        self.message_id, self.role = message_id, role
        super().__init__(f"message {message_id} is a {role} message; feedback is for bot replies")


class DuplicateClientMessageError(StoreError):
    """A turn carries a client message id that the conversation already has: the channel
    re-sent a message, and the stored turn is the answer (nothing was written)."""

    def __init__(self, conversation_id: str, client_message_id: str):
        self.conversation_id, self.client_message_id = conversation_id, client_message_id
        super().__init__(
            f"conversation {conversation_id} already has a message with client_message_id {client_message_id!r}"
        )


class ConversationStore:
    """Conversations, messages, feedback and handoffs in one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db: Database | None = None

    # -- lifecycle -----------------------------------------------------------------
    def open(self) -> ConversationStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # customers' messages: readable by the service's own user only. SQLite gives the
        # -wal and -shm files the database file's mode, so setting it here covers them.
        # Create the file only when it is new (O_EXCL): closing any descriptor of a file
        # the process already has open in SQLite would drop that connection's locks.
        try:
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        os.chmod(self.path, 0o600)
        db = Database(self.path)
        # WAL lets readers (the agent panel, evaluations) work while a turn is written.
        db.enable_wal()
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 5000")
        # erased conversations are overwritten on disk, not left in free pages
        db.execute("PRAGMA secure_delete = ON")
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
    def create_conversation(
        self, channel: str = "cli", conversation_id: str | None = None, token_hash: str | None = None
    ) -> str:
        """A new conversation. `token_hash` (the SHA-256 of its access token) makes it
        readable through the public API by whoever holds the token."""
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
                "token_hash": token_hash,
            }
        )
        return conversation_id

    def access_ok(self, conversation_id: str, token_hash: str, read_hours: float | None = None) -> bool:
        """Whether `token_hash` opens the conversation: it has a token, the hashes match
        (compared in constant time), and it was active within `read_hours`."""
        rows = list(self.db.query("select token_hash, updated_at from conversations where id = ?", [conversation_id]))
        if not rows or not rows[0]["token_hash"]:
            return False
        if not hmac.compare_digest(rows[0]["token_hash"], token_hash):
            return False
        if read_hours is not None:
            idle = datetime.now(UTC) - datetime.fromisoformat(rows[0]["updated_at"])
            return idle <= timedelta(hours=read_hours)
        return True

    def ensure_conversation(self, conversation_id: str, channel: str) -> bool:
        """Create the conversation unless it exists (channels that name conversations
        themselves, like the Rasa REST sender id). True when it was created now."""
        now = _now()
        cursor = self.db.execute(
            "insert or ignore into conversations (id, channel, status, state, created_at, updated_at) "
            "values (?, ?, 'open', ?, ?, ?)",
            [conversation_id, channel, DialogueState().to_json(), now, now],
        )
        return cursor.rowcount == 1

    def conversation_exists(self, conversation_id: str) -> bool:
        return self.db["conversations"].count_where("id = ?", [conversation_id]) > 0

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """The conversation's row (id, channel, status, state, created_at, updated_at)."""
        rows = list(self.db.query("select * from conversations where id = ?", [conversation_id]))
        if not rows:
            raise UnknownConversationError(conversation_id)
        return rows[0]

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
        handoff atomically. Returns the bot message id.

        A customer message whose `client_message_id` the conversation already has raises
        `DuplicateClientMessageError` and writes nothing."""
        try:
            return self._record_turn(conversation_id, customer, bot, state, handoff_reason)
        except sqlite3.IntegrityError:
            cid = customer.client_message_id
            if cid is not None and self.turn_for_client_message(conversation_id, cid) is not None:
                raise DuplicateClientMessageError(conversation_id, cid) from None
            raise

    def _record_turn(
        self,
        conversation_id: str,
        customer: MessageRecord,
        bot: MessageRecord,
        state: DialogueState,
        handoff_reason: str | None,
    ) -> int:
        with self._write_transaction():
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
        with self._write_transaction():
            updated = self.db.execute("update conversations set updated_at = ? where id = ?", [_now(), conversation_id])
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

    @contextmanager
    def _write_transaction(self) -> Iterator[None]:
        """One transaction that takes the write lock first (BEGIN IMMEDIATE).

        Why not a plain (deferred) BEGIN: a turn reads (the next turn number) before it
        writes, and a deferred transaction that has read cannot wait for the write lock:
        when another connection (another inference worker, another replica) committed in
        between, SQLite fails it at once with "database is locked" (SQLITE_BUSY_SNAPSHOT;
        busy_timeout does not apply). Taking the lock up front makes concurrent writers
        queue for up to busy_timeout instead, and the turn number it reads is final.
        """
        conn = self.db.conn
        if conn.in_transaction:  # inside a caller's transaction: a savepoint of it
            with self.db.atomic():
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

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
                "client_message_id": m.client_message_id,
                "buttons": json.dumps(list(m.buttons)) if m.buttons else None,
                "created_at": _now(),
            }
        )
        return int(table.last_pk)

    # -- reads ---------------------------------------------------------------------
    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        if not self.conversation_exists(conversation_id):
            raise UnknownConversationError(conversation_id)
        rows = self.db["messages"].rows_where("conversation_id = ?", [conversation_id], order_by="turn")
        return [_decoded(r) for r in rows]

    def messages_page(
        self, conversation_id: str, *, limit: int, before: int | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """The latest `limit` messages (below message id `before`, when given), oldest
        first, and whether older ones remain."""
        if not self.conversation_exists(conversation_id):
            raise UnknownConversationError(conversation_id)
        rows = list(
            self.db.query(
                "select * from messages where conversation_id = ? and id < ? order by id desc limit ?",
                [conversation_id, before if before is not None else 2**63 - 1, limit + 1],
            )
        )
        has_more = len(rows) > limit
        return [_decoded(r) for r in reversed(rows[:limit])], has_more

    def turn_for_client_message(
        self, conversation_id: str, client_message_id: str
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(customer message, the bot reply after it) of the turn that carried
        `client_message_id`, or None when the conversation has no such message."""
        rows = list(
            self.db.query(
                "select * from messages where conversation_id = ? and turn in ("
                " select turn from messages where conversation_id = ? and client_message_id = ?"
                " union select turn + 1 from messages where conversation_id = ? and client_message_id = ?"
                ") order by turn",
                [conversation_id, conversation_id, client_message_id, conversation_id, client_message_id],
            )
        )
        if len(rows) != 2:
            return None
        customer, bot = (_decoded(r) for r in rows)
        return customer, bot

    def agent_messages_after(self, conversation_id: str, after_message_id: int) -> list[dict[str, Any]]:
        """The conversation's human-agent messages with an id above `after_message_id`,
        oldest first (what a live channel has not shown yet)."""
        return list(
            self.db.query(
                "select id, text, created_at from messages "
                "where conversation_id = ? and role = 'agent' and id > ? order by id",
                [conversation_id, after_message_id],
            )
        )

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
            yield _decoded(r)

    def feedback_votes(self) -> dict[int, tuple[str, str]]:
        """message id -> (rating "up"/"down", author "customer"/"agent") for every rated
        message (one rating each; ratings from before authors were kept count as customers')."""
        rows = self.db.query("select message_id, rating, author from feedback order by id")
        return {r["message_id"]: (r["rating"], r["author"] or "customer") for r in rows}

    def feedback_ratings(self) -> dict[int, tuple[str, ...]]:
        """message id -> its ratings ("up"/"down"), for every rated message."""
        return {message_id: (rating,) for message_id, (rating, _) in self.feedback_votes().items()}

    def handoffs(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        if conversation_id is None:
            return list(self.db["handoffs"].rows_where(order_by="id"))
        return list(self.db["handoffs"].rows_where("conversation_id = ?", [conversation_id], order_by="id"))

    def latest_ratings(self, conversation_id: str) -> dict[int, str]:
        """message id -> its latest rating ("up"/"down"), for the conversation's rated messages."""
        rows = self.db.query(
            "select f.message_id, f.rating from feedback f join messages m on m.id = f.message_id "
            "where m.conversation_id = ? order by f.id",
            [conversation_id],
        )
        return {r["message_id"]: r["rating"] for r in rows}

    # -- feedback ------------------------------------------------------------------
    def add_feedback(
        self,
        message_id: int,
        rating: str,
        comment: str | None = None,
        *,
        conversation_id: str | None = None,
        author: str = "customer",
    ) -> int:
        """Rate a bot reply; a message has one rating, and a new one replaces it. With
        `conversation_id`, the message must belong to that conversation (what the public
        API asks: nobody rates another conversation's replies). Returns the rating's id."""
        if rating not in ("up", "down"):
            raise StoreError(f"rating must be 'up' or 'down', got {rating!r}")
        if author not in ("customer", "agent"):
            raise StoreError(f"a rating's author is 'customer' or 'agent', got {author!r}")
        rows = list(self.db.query("select role, conversation_id from messages where id = ?", [message_id]))
        if not rows or (conversation_id is not None and rows[0]["conversation_id"] != conversation_id):
            raise UnknownMessageError(message_id)
        if rows[0]["role"] != "bot":
            raise NotABotMessageError(message_id, rows[0]["role"])
        self.db.execute(
            "insert into feedback (message_id, rating, comment, author, created_at) values (?, ?, ?, ?, ?) "
            "on conflict (message_id) do update set rating = excluded.rating, comment = excluded.comment, "
            "author = excluded.author, created_at = excluded.created_at",
            [message_id, rating, comment, author, _now()],
        )
        self.db.conn.commit()
        found = list(self.db.query("select id from feedback where message_id = ?", [message_id]))
        return int(found[0]["id"])

    def add_csat(self, conversation_id: str, score: int, comment: str | None = None) -> int:
        """Record the conversation's satisfaction score (1-5); a second one replaces the
        first. Returns its id."""
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise StoreError(f"a CSAT score is a whole number from 1 to 5, got {score!r}")
        if not self.conversation_exists(conversation_id):
            raise UnknownConversationError(conversation_id)
        self.db.execute(
            "insert into csat (conversation_id, score, comment, created_at) values (?, ?, ?, ?) "
            "on conflict (conversation_id) do update set score = excluded.score, "
            "comment = excluded.comment, created_at = excluded.created_at",
            [conversation_id, score, comment, _now()],
        )
        self.db.conn.commit()
        found = list(self.db.query("select id from csat where conversation_id = ?", [conversation_id]))
        return int(found[0]["id"])

    def csat(self, conversation_id: str) -> list[dict[str, Any]]:
        return list(self.db["csat"].rows_where("conversation_id = ?", [conversation_id], order_by="id"))

    # -- erasure and retention --------------------------------------------------------
    def erase_conversation(self, conversation_id: str) -> dict[str, int]:
        """Delete a conversation with everything that refers to it (messages, ratings,
        CSAT, handoffs), in one transaction. Returns the rows deleted per table; raises
        UnknownConversationError when there is no such conversation."""
        with self._write_transaction():
            counts = {
                "feedback": self.db.execute(
                    "delete from feedback where message_id in (select id from messages where conversation_id = ?)",
                    [conversation_id],
                ).rowcount,
                "csat": self.db.execute("delete from csat where conversation_id = ?", [conversation_id]).rowcount,
                "handoffs": self.db.execute(
                    "delete from handoffs where conversation_id = ?", [conversation_id]
                ).rowcount,
                "messages": self.db.execute(
                    "delete from messages where conversation_id = ?", [conversation_id]
                ).rowcount,
                "conversations": self.db.execute("delete from conversations where id = ?", [conversation_id]).rowcount,
            }
            if counts["conversations"] != 1:
                raise UnknownConversationError(conversation_id)
        # fold the WAL into the main file, so the erased pages do not linger in the log
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts

    def conversations_mentioning(self, text: str) -> list[str]:
        """Ids of conversations whose messages or dialogue state contain `text` (case
        folded): how `csbot forget --email` finds a customer's conversations."""
        needle = text.strip().lower()
        if not needle:
            return []
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.db.query(
            "select id from conversations where lower(state) like :p escape '\\' "
            "union select conversation_id from messages where lower(text) like :p escape '\\' "
            "   or lower(coalesce(edited_from, '')) like :p escape '\\'",
            {"p": pattern},
        )
        return sorted(r["id"] for r in rows)

    def idle_conversations(self, idle_days: float) -> list[str]:
        """Ids of conversations with no activity in the last `idle_days` days."""
        cutoff = (datetime.now(UTC) - timedelta(days=idle_days)).isoformat(timespec="milliseconds")
        return [
            r["id"]
            for r in self.db.query("select id from conversations where updated_at < ? order by updated_at", [cutoff])
        ]


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """A message row with its JSON columns (sources, buttons) decoded."""
    decoded = {**row, "sources": json.loads(row["sources"] or "[]")}
    if "buttons" in row:
        decoded["buttons"] = json.loads(row["buttons"] or "[]")
    return decoded
