"""Administering a store file: where its schema stands, upgrading it, and moving its
conversations out and in as JSONL (`csbot db status | upgrade | export | import`).

These are the back-end-neutral operations the CLI calls; each takes the store's target:
its SQLite file, or a PostgreSQL URL. On PostgreSQL `schema_status` reads the same
migration names from its migrations table; `upgrade` takes the store's write lock (a
transaction-level advisory lock where SQLite takes BEGIN IMMEDIATE) and applies the
pending migrations in that one transaction (PostgreSQL's DDL is transactional too, so the
all-or-nothing guarantee is the same); `export_conversations` reads one snapshot
(REPEATABLE READ) on both; `import_conversations` writes in one transaction. The JSONL is
the same for both, which is what moves a workspace's conversations from one back end to
the other.

The JSONL (one conversation per line) is the importers' conversation format
(`retrieval.importers`: `id`, `intent`, `outcome`, `turns` of `role` and `text`), with
what the store keeps besides, so that a move loses nothing a conversation needs:

- conversation: `id` (kept: pairs, the held-out split and erasure requests name
  conversations by id), `channel`, `status`, `handling`, `tags`, `state` (the dialogue
  state, an object), `token_hash` (the SHA-256 of a web conversation's access token, so
  the customer's widget still opens it), `created_at`, `updated_at`,
  `handling_changed_at`, `csat` ({score, comment, created_at} or null) and `handoffs`
  (each with the `turn` of the message it followed, its reason, status, times, outcome);
- turn: `role` (customer, bot, agent or system), `text`, `created_at`, and when set:
  `intent`, `confidence`, `out_of_scope`, `action`, `sources`, `composer`, `note`,
  `latency_ms`, `edited_from`, `client_message_id`, `buttons`, and `feedback`
  ({rating, author, comment, created_at}).

Not moved: message ids (the target store numbers its own), agent accounts and whatever
names them (which agent holds a conversation or sent a message, the agents' notes, the
reply suggestions shown to them; recreate accounts with `csbot users`), and the messaging
channels' delivery queues. So a conversation an agent held comes in waiting for one
(`handling` "pending"), and an agent's message that was a suggestion sent unchanged
counts, in pairs built afterwards, as typed by the agent; an edited one keeps
`edited_from`. `intent` and `outcome` are derived on export (the bot's intent for the
first message; "escalated" when it was handed off) and ignored on import.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlite_utils import Database

from bot.store.connection import StoreConnection, open_sqlite, sqlite_error
from bot.store.database import PostgresDatabase, SqlDatabase, SqliteDatabase, is_database_url
from bot.store.errors import ConstraintError, ConversationImportError, SchemaTooNewError, StoreUnavailableError
from bot.store.records import DialogueState, now_timestamp
from bot.store.schema import SchemaState, check_schema, schema_state
from retrieval.config import ImportConfig
from retrieval.files import atomic_writer
from retrieval.importers import json_nesting_over

ROLES = ("customer", "bot", "agent", "system")
# optional turn fields: JSON name -> the types a value may have
_TURN_FIELDS: dict[str, tuple[type, ...]] = {
    "intent": (str,),
    "confidence": (int, float),
    "out_of_scope": (bool,),
    "action": (str,),
    "composer": (str,),
    "note": (str,),
    "latency_ms": (int, float),
    "edited_from": (str,),
    "client_message_id": (str,),
}
_CONVERSATION_TEXT = ("channel", "status", "handling", "tags", "token_hash", "created_at", "updated_at")


@dataclass(frozen=True)
class StoreStatus:
    """`schema_status`: the store's path (or redacted URL), whether it exists, and its
    `SchemaState`."""

    path: Path | str
    exists: bool
    schema: SchemaState

    def to_json(self) -> dict[str, object]:
        return {"store": str(self.path), "exists": self.exists, **self.schema.to_json()}


@dataclass(frozen=True)
class MoveReport:
    """What an export or import moved."""

    path: Path
    conversations: int
    messages: int

    def to_json(self) -> dict[str, object]:
        return {"file": str(self.path), "conversations": self.conversations, "messages": self.messages}


# -- schema --------------------------------------------------------------------------


def schema_status(path: Path | str) -> StoreStatus:
    """Applied, known, pending and unknown (newer) migrations of the store at `path`,
    read without migrating or creating anything. A missing file reports every migration
    pending (what opening it, or `upgrade`, would create); a file that is not a csbot
    store raises `NotAStoreError`."""
    if not is_database_url(path) and not Path(path).exists():
        return StoreStatus(path, False, _state_of_missing_store())
    with _raw(path) as db:
        # a newer schema is reported, not refused: saying so is what status is for
        with contextlib.suppress(SchemaTooNewError):
            check_schema(db, db.where)
        return StoreStatus(db.where if is_database_url(path) else path, True, schema_state(db))


def _state_of_missing_store() -> SchemaState:
    """The state of a store not created yet: every known migration pending."""
    with Database(memory=True) as empty:
        return schema_state(SqliteDatabase(empty, ":memory:"))


def refuse_newer_schema(path: Path | str) -> None:
    """Raise `SchemaTooNewError` (or `NotAStoreError`) when the store at `path` must not be
    opened by this csbot; nothing when it is current, older (opening upgrades it) or not
    created yet. What a service checks before it starts serving."""
    if is_database_url(path) or Path(path).exists():
        with _raw(path) as db:
            check_schema(db, db.where)


def upgrade(path: Path | str) -> list[str]:
    """Apply the store's pending migrations (creating the store when there is none);
    returns the names this call applied: empty when it was current, or when another
    process upgraded it while this one waited for the write lock. All or nothing (see
    `bot.store.schema.apply_pending`); a newer store raises `SchemaTooNewError`."""
    with StoreConnection(path) as store:
        return store.migrations_applied


@contextlib.contextmanager
def _raw(target: Path | str) -> Iterator[SqlDatabase]:
    """A plain connection to an existing store: no WAL switch, no migration, errors typed."""
    if is_database_url(target):
        pg = PostgresDatabase(str(target)).connect()
        try:
            yield pg
        finally:
            pg.close()
        return
    path = Path(target)
    db = open_sqlite(path)
    try:
        yield SqliteDatabase(db, str(path))
    except sqlite3.DatabaseError as e:
        raise sqlite_error(path, e) from e
    finally:
        db.close()


# -- export --------------------------------------------------------------------------


def export_conversations(path: Path | str, out_jsonl: Path) -> MoveReport:
    """Write every conversation of the store at `path` to `out_jsonl`, one per line in
    creation order, from one consistent snapshot (a live service may keep writing). The
    file is created owner-only and appears whole or not at all; an existing file is
    refused (it may be another export). Opening the store applies pending migrations."""
    if not is_database_url(path) and not Path(path).is_file():
        raise StoreUnavailableError(str(path), "there is no store file", "check --workspace (nothing to export)")
    if out_jsonl.exists():
        raise StoreUnavailableError(str(out_jsonl), "the file exists", "remove it or name a new file to export to")
    if not out_jsonl.parent.is_dir():
        raise StoreUnavailableError(str(out_jsonl), "its folder does not exist", "create it or export elsewhere")
    conversations = messages = 0
    with StoreConnection(path) as store, atomic_writer(out_jsonl, "w", encoding="utf-8") as out:
        db = store.db
        with db.read_snapshot():  # one snapshot for the whole export: a live service may write meanwhile
            for conversation in list(db.query("select * from conversations order by created_at, id")):
                line = _exported(db, conversation)
                out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
                conversations += 1
                messages += len(line["turns"])
    return MoveReport(out_jsonl, conversations, messages)


def _exported(db: SqlDatabase, c: dict[str, Any]) -> dict[str, Any]:
    rows = list(db.query("select * from messages where conversation_id = ? order by turn", [c["id"]]))
    turn_of = {r["id"]: n for n, r in enumerate(rows)}
    ratings = {
        r["message_id"]: r
        for r in db.query(
            "select f.* from feedback f join messages m on m.id = f.message_id where m.conversation_id = ?",
            [c["id"]],
        )
    }
    turns = [_exported_turn(r, ratings.get(r["id"])) for r in rows]
    csat = [
        {"score": r["score"], "comment": r["comment"], "created_at": r["created_at"]}
        for r in db.query("select * from csat where conversation_id = ?", [c["id"]])
    ]
    handoffs = [
        {
            "turn": turn_of.get(h["message_id"]),
            **{k: h[k] for k in ("reason", "status", "created_at", "claimed_at", "first_response_at", "closed_at")},
            "outcome": h["outcome"],
        }
        for h in db.query("select * from handoffs where conversation_id = ? order by id", [c["id"]])
    ]
    first_intent = next((t["intent"] for t in turns if t["role"] == "bot" and t.get("intent")), None)
    return {
        "id": c["id"],
        "intent": first_intent,
        "outcome": "escalated" if handoffs else None,
        "turns": turns,
        **{k: c[k] for k in _CONVERSATION_TEXT},
        "handling_changed_at": c["handling_changed_at"],
        "state": json.loads(c["state"]),
        "csat": csat[0] if csat else None,
        "handoffs": handoffs,
    }


def _exported_turn(m: dict[str, Any], rating: dict[str, Any] | None) -> dict[str, Any]:
    turn: dict[str, Any] = {"role": m["role"], "text": m["text"], "created_at": m["created_at"]}
    for key in _TURN_FIELDS:
        if m[key] is not None:
            turn[key] = bool(m[key]) if key == "out_of_scope" else m[key]
    sources = json.loads(m["sources"] or "[]")
    if sources:
        turn["sources"] = sources
    buttons = json.loads(m["buttons"] or "[]")
    if buttons:
        turn["buttons"] = buttons
    if rating is not None:
        turn["feedback"] = {k: rating[k] for k in ("rating", "author", "comment", "created_at")}
    return turn


# -- import --------------------------------------------------------------------------


def import_conversations(path: Path | str, in_jsonl: Path, limits: ImportConfig | None = None) -> MoveReport:
    """Add the conversations of `in_jsonl` (an export, or any file in the importers'
    conversation format) to the store at `path`, creating the store if there is none.

    One write transaction: the first bad line, or a conversation id the store already
    has, raises `ConversationImportError` naming the line, and nothing is written. Lines
    are bounded like the importers' files (`ImportConfig`: a line over `max_file_bytes`,
    JSON nested deeper than `max_json_depth`). It holds the store's write lock while it
    runs: import before the service starts on the target store."""
    limits = limits or ImportConfig()
    if not in_jsonl.is_file():
        raise ConversationImportError(str(in_jsonl), None, "no such file (check the path)")
    conversations = messages = 0
    with StoreConnection(path) as store, in_jsonl.open("rb") as lines:
        db = store.db
        with store._write_transaction():
            for row, raw in enumerate(_bounded_lines(lines, limits.max_file_bytes), start=1):
                if not raw.strip():
                    continue
                conversation = _parsed_line(in_jsonl, row, raw, limits)
                try:
                    messages += _insert_conversation(db, conversation)
                except ConstraintError as e:
                    reason = (
                        f"conversation id {conversation['id']!r} is already in the store or earlier in this file; "
                        "import into a store without it"
                        if "conversations.id" in str(e) or "conversations_pkey" in str(e)
                        else f"the conversation breaks a rule of the store ({e}): a client_message_id used twice?"
                    )
                    raise ConversationImportError(str(in_jsonl), row, reason) from None
                conversations += 1
            if conversations == 0:
                raise ConversationImportError(str(in_jsonl), None, "the file holds no conversations")
    return MoveReport(in_jsonl, conversations, messages)


def _bounded_lines(f: BinaryIO, max_bytes: int) -> Iterator[bytes]:
    """The file's lines, each read up to `max_bytes` + 1 bytes: a longer one is cut there
    (and refused by its length) instead of being read whole into memory."""
    while line := f.readline(max_bytes + 1):
        yield line


def _parsed_line(path: Path, row: int, raw: bytes, limits: ImportConfig) -> dict[str, Any]:
    def bad(reason: str) -> ConversationImportError:
        return ConversationImportError(str(path), row, reason)

    if len(raw) > limits.max_file_bytes:
        raise bad(f"the line is over ImportConfig.max_file_bytes = {limits.max_file_bytes:,} bytes")
    try:
        text = raw.decode("utf-8-sig" if row == 1 else "utf-8")
    except UnicodeDecodeError as e:
        raise bad(f"not UTF-8 text ({e.reason} at byte {e.start}); re-save the file as UTF-8") from e
    if json_nesting_over(text, limits.max_json_depth) is not None:
        raise bad(f"JSON nested more than ImportConfig.max_json_depth = {limits.max_json_depth} levels deep")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise bad(f"invalid JSON: {e.msg} at column {e.colno}") from e
    reason = _invalid_conversation(obj)
    if reason is not None:
        raise bad(reason)
    return {**obj, "id": str(obj["id"])}  # the importers take numbers as ids too


def _invalid_conversation(obj: Any) -> str | None:
    """Why `obj` is not a conversation this import can store, or None."""
    if not isinstance(obj, dict):
        return f"the line is a JSON {type(obj).__name__}, expected an object"
    conversation_id = obj.get("id")
    if isinstance(conversation_id, bool) or not isinstance(conversation_id, (str, int)):
        return "missing 'id' (a string or a number)"
    if not str(conversation_id).strip():
        return "empty 'id'"
    for key in (*_CONVERSATION_TEXT, "handling_changed_at"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            return f"'{key}' must be a string or null, got {obj[key]!r}"
    if obj.get("state") is not None and not isinstance(obj["state"], dict):
        return "'state' must be an object (the dialogue state) or null"
    turns = obj.get("turns")
    if not isinstance(turns, list):  # empty is fine: a web conversation opened and never written to
        return "missing 'turns' list"
    for n, turn in enumerate(turns, start=1):
        reason = _invalid_turn(turn)
        if reason is not None:
            return f"turn {n}: {reason}"
    csat = obj.get("csat")
    if csat is not None and (
        not isinstance(csat, dict) or isinstance(csat.get("score"), bool) or csat.get("score") not in (1, 2, 3, 4, 5)
    ):
        return "'csat' must be null or an object with a 'score' from 1 to 5"
    handoffs = obj.get("handoffs") or []
    if not isinstance(handoffs, list):
        return "'handoffs' must be a list"
    for n, h in enumerate(handoffs, start=1):
        if not isinstance(h, dict) or not isinstance(h.get("reason"), str):
            return f"handoff {n} must be an object with a 'reason' string"
        at = h.get("turn")
        if at is not None and (isinstance(at, bool) or not isinstance(at, int) or not 0 <= at < len(turns)):
            return f"handoff {n} names turn {at!r}, which the conversation does not have"
    return None


def _invalid_turn(turn: Any) -> str | None:
    if not isinstance(turn, dict):
        return "not an object with 'role' and 'text'"
    if turn.get("role") not in ROLES:
        return f"role {turn.get('role')!r}; expected one of {', '.join(ROLES)}"
    if not isinstance(turn.get("text"), str):
        return "no 'text' string"
    for key, kinds in _TURN_FIELDS.items():
        value = turn.get(key)
        if value is not None and (not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))):
            return f"'{key}' must be {' or '.join(k.__name__ for k in kinds)}, got {value!r}"
    for key in ("sources", "buttons"):
        if turn.get(key) is not None and not isinstance(turn[key], list):
            return f"'{key}' must be a list"
    feedback = turn.get("feedback")
    if feedback is not None and (not isinstance(feedback, dict) or feedback.get("rating") not in ("up", "down")):
        return "'feedback' must be an object with 'rating' up or down"
    return None


def _insert_conversation(db: SqlDatabase, c: dict[str, Any]) -> int:
    """Insert one validated conversation with its messages, ratings, CSAT and handoffs;
    returns how many messages. Inside the caller's transaction."""
    now = now_timestamp()
    created = c.get("created_at") or now
    handling = c.get("handling") or "bot"
    state = c.get("state")
    db.execute(
        "insert into conversations (id, channel, status, state, created_at, updated_at, token_hash, handling, "
        "tags, handling_changed_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            c["id"],
            c.get("channel") or "import",
            c.get("status") or "closed",
            json.dumps(state, sort_keys=True) if state is not None else DialogueState().to_json(),
            created,
            c.get("updated_at") or created,
            c.get("token_hash"),
            # no agent holds it here (agents are not moved): it waits for one
            "pending" if handling == "open" else handling,
            c.get("tags"),
            c.get("handling_changed_at"),
        ],
    )
    message_ids = []
    for n, t in enumerate(c["turns"]):
        sources, buttons = t.get("sources") or [], t.get("buttons") or []
        out_of_scope = t.get("out_of_scope")
        cursor = db.execute(
            "insert into messages (conversation_id, turn, role, text, intent, confidence, out_of_scope, action, "
            "sources, composer, note, latency_ms, edited_from, client_message_id, buttons, created_at) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) returning id",
            [
                c["id"],
                n,
                t["role"],
                t["text"],
                t.get("intent"),
                t.get("confidence"),
                None if out_of_scope is None else int(out_of_scope),
                t.get("action"),
                json.dumps(sources),
                t.get("composer"),
                t.get("note"),
                t.get("latency_ms"),
                t.get("edited_from"),
                t.get("client_message_id"),
                json.dumps(buttons) if buttons else None,
                t.get("created_at") or created,
            ],
        )
        ((message_id,),) = cursor.fetchall()  # read to the end: SQLite holds a RETURNING statement open
        message_ids.append(message_id)
        feedback = t.get("feedback")
        if feedback is not None:
            db.execute(
                "insert into feedback (message_id, rating, comment, author, created_at) values (?, ?, ?, ?, ?)",
                [
                    message_id,
                    feedback["rating"],
                    feedback.get("comment"),
                    feedback.get("author"),
                    feedback.get("created_at") or now,
                ],
            )
    csat = c.get("csat")
    if csat is not None:
        db.execute(
            "insert into csat (conversation_id, score, comment, created_at) values (?, ?, ?, ?)",
            [c["id"], csat["score"], csat.get("comment"), csat.get("created_at") or now],
        )
    for h in c.get("handoffs") or []:
        db.execute(
            "insert into handoffs (conversation_id, message_id, reason, status, created_at, claimed_at, "
            "first_response_at, closed_at, outcome) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                c["id"],
                message_ids[h["turn"]] if h.get("turn") is not None else None,
                h["reason"],
                h.get("status") or "closed",
                h.get("created_at") or now,
                h.get("claimed_at"),
                h.get("first_response_at"),
                h.get("closed_at"),
                h.get("outcome"),
            ],
        )
    return len(message_ids)


__all__ = [
    "MoveReport",
    "StoreStatus",
    "export_conversations",
    "import_conversations",
    "refuse_newer_schema",
    "schema_status",
    "upgrade",
]
