"""The conversation store's schema, as the ordered migrations that build it, and how they
are applied.

A store file of any age is brought to the current schema by applying the migrations it
has not seen yet; a migration, once released, is never edited (a new one follows it).

On PostgreSQL the same migration names are recorded; their statements are in
`bot.store.schema_postgres`.

Applying (`apply_pending`) happens under the store's write lock (see
`SqlDatabase.write_transaction`), in one
transaction with every pending migration in it: of two processes upgrading at once one
applies them and the other waits for the lock, reads the migrations table again and finds
nothing to do; a process that dies half way (an exception, a kill) leaves the store as it
was before the upgrade, and the next open or `csbot db upgrade` applies them all. A store
that a newer csbot migrated (names this code does not know) is refused before anything is
read or written (`SchemaTooNewError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlite_utils import Database, Migrations

from bot.store import schema_postgres
from bot.store.database import SqlDatabase, SqliteDatabase
from bot.store.errors import NotAStoreError, SchemaTooNewError, StoreError
from retrieval.entities import redact_card_numbers

SCHEMA_NAME = "csbot"
migrations = Migrations(SCHEMA_NAME)
# how long an upgrade waits for another process's write lock (another upgrade, a long write)
UPGRADE_LOCK_WAIT_S = 120.0


@dataclass(frozen=True)
class SchemaState:
    """Where a store's schema stands against the migrations this code knows.

    `applied`: the names the store records, in the order applied; `known`: this code's
    migrations, in order; `pending`: known and not applied (what an upgrade applies);
    `unknown`: applied but not known, i.e. a newer csbot migrated the store."""

    applied: list[str]
    known: list[str]
    pending: list[str]
    unknown: list[str]

    @property
    def newer_than_known(self) -> bool:
        return bool(self.unknown)

    def to_json(self) -> dict[str, object]:
        return {
            "applied": self.applied,
            "known": self.known,
            "pending": self.pending,
            "unknown": self.unknown,
            "newer_than_known": self.newer_than_known,
        }


def known_migrations(migration_set: Migrations = migrations) -> list[str]:
    """The names of the set's migrations, in order (on an empty database every one is pending)."""
    with Database(memory=True) as empty:
        return [m.name for m in migration_set.pending(empty)]


def applied_migrations(db: SqlDatabase, set_name: str = SCHEMA_NAME) -> list[str]:
    """The migration names the store records for `set_name`, in the order applied.

    Read with plain SQL rather than `Migrations.applied`, which in some sqlite-utils 4.x
    releases creates the migrations table: a check must not write."""
    table = "_sqlite_migrations" if db.dialect == "sqlite" else schema_postgres.MIGRATIONS_TABLE
    if table not in db.table_names():
        return []
    rows = db.execute(
        f"select name from {table} where migration_set = ? order by {'rowid' if db.dialect == 'sqlite' else 'id'}",
        [set_name],
    ).fetchall()
    return [str(name) for (name,) in rows]


def schema_state(db: SqlDatabase, migration_set: Migrations = migrations) -> SchemaState:
    """Compare the store's applied migrations with the set's (reads only)."""
    applied = applied_migrations(db, migration_set.name)
    known = known_migrations(migration_set)
    done = set(applied)
    return SchemaState(
        applied=applied,
        known=known,
        pending=[name for name in known if name not in done],
        unknown=[name for name in applied if name not in set(known)],
    )


def check_schema(db: SqlDatabase, where: str, migration_set: Migrations = migrations) -> SchemaState:
    """The store's `SchemaState`; raises `SchemaTooNewError` when a newer csbot migrated it
    and `NotAStoreError` when it is a database of something else (tables, but no csbot
    migration), so that nothing is written into another program's database."""
    state = schema_state(db, migration_set)
    if state.unknown:
        raise SchemaTooNewError(where, state.unknown)
    if not state.applied:
        ours = {"_sqlite_migrations", schema_postgres.MIGRATIONS_TABLE}
        foreign = [t for t in db.table_names() if t not in ours and not t.startswith("sqlite_")]
        if foreign:
            # another process's upgrade may have committed between the two reads (replicas
            # starting together on a new store): its tables and its migration rows commit
            # together, so the tables seen now mean the rows can be read now
            state = schema_state(db, migration_set)
            if state.unknown:
                raise SchemaTooNewError(where, state.unknown)
        if foreign and not state.applied:
            shown = ", ".join(sorted(foreign)[:5]) + (", ..." if len(foreign) > 5 else "")
            kind = "a SQLite" if db.dialect == "sqlite" else "a PostgreSQL"
            raise NotAStoreError(where, f"it is {kind} database with other tables ({shown}) and no csbot schema")
    return state


def apply_pending(
    db: SqlDatabase,
    where: str,
    migration_set: Migrations = migrations,
    lock_wait_s: float = UPGRADE_LOCK_WAIT_S,
) -> list[str]:
    """Bring the store to the set's schema; returns the names this call applied (empty when
    it was current, or another process upgraded it while this one waited for the lock).

    All pending migrations run in one write transaction (on SQLite each in a savepoint of
    it, sqlite-utils' `atomic`), so the store is never left between two schema versions.
    `lock_wait_s` bounds the wait for another writer; past it `StoreUnavailableError`."""
    if not check_schema(db, where, migration_set).pending:
        return []  # the common case (every open of a current store): no lock taken
    fix = "another process is upgrading or writing it: wait for it to finish and run `csbot db upgrade` again"
    with db.write_transaction(wait_s=lock_wait_s, fix=fix):
        # read again under the lock: another process may have applied them meanwhile
        state = check_schema(db, where, migration_set)
        if isinstance(db, SqliteDatabase):
            _require_transactional(migration_set, db.sqlite)
            migration_set.apply(db.sqlite)
        else:
            _apply_on_postgres(db, migration_set.name, state)
    return state.pending


def _apply_on_postgres(db: SqlDatabase, set_name: str, state: SchemaState) -> None:
    """The pending migrations' PostgreSQL statements (the base schema on an empty database),
    each recorded in the migrations table, inside the caller's transaction."""
    missing = [n for n in state.pending if n not in schema_postgres.BASE_MIGRATIONS and n not in schema_postgres.LATER]
    if missing:
        raise StoreError(
            f"migrations {', '.join(missing)} have no PostgreSQL statements (bot/store/schema_postgres.py)"
        )
    db.execute(schema_postgres.MIGRATIONS_TABLE_DDL)
    pending = list(state.pending)
    if any(n in schema_postgres.BASE_MIGRATIONS for n in pending):
        if state.applied:  # only an empty database takes the base: never re-create tables
            raise StoreError(f"the PostgreSQL store records {state.applied[-1]} but not all of the base schema")
        db.execute(schema_postgres.BASE)
    for name in pending:
        if name in schema_postgres.LATER:
            schema_postgres.LATER[name](db)
        db.execute(
            f"insert into {schema_postgres.MIGRATIONS_TABLE} (migration_set, name, applied_at) values (?, ?, ?)",
            [set_name, name, datetime.now(UTC).isoformat()],
        )


def _require_transactional(migration_set: Migrations, db: Database) -> None:
    """A migration that cannot run in a transaction (VACUUM, say) would break the
    all-or-nothing upgrade: refuse it, loudly, before anything is applied."""
    for migration in migration_set.pending(db):
        if not getattr(migration, "transactional", True):
            raise StoreError(
                f"migration {migration.name} is marked non-transactional; csbot applies every migration inside "
                "the upgrade's transaction, so write it without VACUUM or other statements that need one of their own"
            )


@migrations()
def m001_initial(db: Database) -> None:
    db.table("conversations").create(
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
    db.table("messages").create(
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
    db.table("messages").create_index(["conversation_id", "turn"], unique=True)
    db.table("feedback").create(
        {"id": int, "message_id": int, "rating": str, "comment": str, "created_at": str},
        pk="id",
        not_null={"message_id", "rating", "created_at"},
        foreign_keys=[("message_id", "messages", "id")],
    )
    db.table("handoffs").create(
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
    db.table("messages").add_column("edited_from", str)


@migrations()
def m003_web_channel(db: Database) -> None:
    # the HTTP channel: a customer message may carry the client's id for it, so that a
    # message re-sent by the widget's offline queue finds its stored turn instead of
    # taking a second one (unique per conversation; NULLs do not collide in SQLite)
    db.table("messages").add_column("client_message_id", str)
    db.table("messages").create_index(
        ["conversation_id", "client_message_id"], unique=True, index_name="messages_client_message_id"
    )
    # quick replies offered with a bot message (JSON list), so a reloaded widget shows them
    db.table("messages").add_column("buttons", str)
    # customer satisfaction at the end of a conversation (1 = very bad ... 5 = very good)
    db.table("csat").create(
        {"id": int, "conversation_id": str, "score": int, "comment": str, "created_at": str},
        pk="id",
        not_null={"conversation_id", "score", "created_at"},
        foreign_keys=[("conversation_id", "conversations", "id")],
    )


@migrations()
def m004_public_access(db: Database) -> None:
    # a web conversation's access token, as its SHA-256 (the token itself is never stored);
    # NULL for conversations that the public API never serves (CLI, platform channels)
    db.table("conversations").add_column("token_hash", str)
    # one rating per message and one CSAT per conversation: the latest wins, so a client
    # cannot stack ratings (keep the newest of any earlier duplicates)
    db.execute("delete from feedback where id not in (select max(id) from feedback group by message_id)")
    db.table("feedback").create_index(["message_id"], unique=True, index_name="feedback_one_per_message")
    db.table("feedback").add_column("author", str)  # customer | agent: who rated it
    # live event streams look up handoffs by conversation once per poll
    db.table("handoffs").create_index(["conversation_id"], index_name="handoffs_by_conversation")
    db.execute("delete from csat where id not in (select max(id) from csat group by conversation_id)")
    db.table("csat").create_index(["conversation_id"], unique=True, index_name="csat_one_per_conversation")
    # card numbers are kept as their last four digits from now on: mask the ones that
    # customers' messages stored before (the dialogue state re-masks its slot on load)
    for row in list(db.query("select id, text from messages where role = 'customer'")):
        masked = redact_card_numbers(row["text"])
        if masked != row["text"]:
            db.execute("update messages set text = ? where id = ?", [masked, row["id"]])


@migrations()
def m005_agent_panel(db: Database) -> None:
    # human agents who sign in to the panel, their sessions, and failed sign-ins (throttling)
    db.table("agents").create(
        {
            "id": int,
            "name": str,
            "role": str,  # agent | admin
            "password_hash": str,
            "disabled": int,
            "created_at": str,
            "password_changed_at": str,
        },
        pk="id",
        not_null={"name", "role", "password_hash", "disabled", "created_at", "password_changed_at"},
    )
    db.table("agents").create_index(["name"], unique=True, index_name="agents_by_name")
    db.table("agent_sessions").create(
        {
            "token_hash": str,  # SHA-256 of the cookie value (the value itself is never stored)
            "agent_id": int,
            "csrf_token": str,
            "created_at": str,
            "last_seen_at": str,
            "expires_at": str,
        },
        pk="token_hash",
        not_null={"agent_id", "csrf_token", "created_at", "last_seen_at", "expires_at"},
        foreign_keys=[("agent_id", "agents", "id")],
    )
    db.table("sign_in_failures").create({"id": int, "key": str, "at": str}, pk="id", not_null={"key", "at"})
    db.table("sign_in_failures").create_index(["key", "at"], index_name="sign_in_failures_by_key")
    # who handles a conversation: the bot, nobody yet (pending), a human (open), or nobody
    # any more (resolved); the holder while open; the tags it was resolved with
    db.table("conversations").add_column("handling", str, not_null_default="bot")
    db.table("conversations").add_column("agent_id", int)
    db.table("conversations").add_column("tags", str)
    db.table("conversations").add_column("handling_changed_at", str)
    db.execute(
        "update conversations set handling = 'pending', handling_changed_at = updated_at where status = 'handoff'"
    )
    # each episode of human handling, timed for the metrics (first response, handle time)
    for column, kind in (("agent_id", int), ("claimed_at", str), ("first_response_at", str), ("closed_at", str)):
        db.table("handoffs").add_column(column, kind)
    db.table("handoffs").add_column("outcome", str)  # resolved | handed_back
    db.table("agent_notes").create(
        {"id": int, "conversation_id": str, "agent_id": int, "text": str, "created_at": str},
        pk="id",
        not_null={"conversation_id", "agent_id", "text", "created_at"},
        foreign_keys=[("conversation_id", "conversations", "id"), ("agent_id", "agents", "id")],
    )
    db.table("agent_notes").create_index(["conversation_id"], index_name="agent_notes_by_conversation")
    # every reply suggested to an agent, and what became of it (the pairs learn from edits)
    db.table("suggestions").create(
        {
            "id": int,
            "conversation_id": str,
            "for_message_id": int,
            "agent_id": int,
            "rank": int,
            "kind": str,  # generated | retrieved
            "composer": str,
            "text": str,
            "sources": str,  # JSON list of {id, score}
            "score": float,
            "shown_at": str,
            "outcome": str,  # shown | sent | edited | discarded
            "final_text": str,
            "message_id": int,
            "decided_at": str,
        },
        pk="id",
        not_null={"conversation_id", "for_message_id", "agent_id", "rank", "kind", "text", "shown_at", "outcome"},
        foreign_keys=[("conversation_id", "conversations", "id"), ("agent_id", "agents", "id")],
    )
    db.table("suggestions").create_index(
        ["conversation_id", "for_message_id", "agent_id"], index_name="suggestions_by_turn"
    )
    db.table("messages").add_column("agent_id", int)
    db.table("messages").add_column("suggestion_id", int)


@migrations()
def m006_channels(db: Database) -> None:
    # Messaging platforms: every inbound message is written here before the webhook answers
    # (the platform gets its 200 at once, the turn runs later, a restart finds it again),
    # and every message for a platform waits in the outbox until the platform took it.
    # Rows go with their conversation (ON DELETE CASCADE): erasure leaves none behind.
    db.execute(
        """create table channel_inbox (
            id integer primary key,
            platform text not null,
            event_id text not null,  -- the platform's id of the delivery: retries repeat it
            conversation_id text not null references conversations(id) on delete cascade,
            address text not null,  -- JSON: what a reply needs (chat, thread, phone number...)
            text text not null,
            status text not null,  -- pending | done | failed
            attempts integer not null default 0,
            next_attempt_at text not null,  -- also a claim: a worker taking it moves it on
            received_at text not null,
            processed_at text,
            error text
        )"""
    )
    db.execute("create unique index channel_inbox_by_event on channel_inbox (platform, event_id)")
    db.execute("create index channel_inbox_due on channel_inbox (status, next_attempt_at)")
    db.execute("create index channel_inbox_by_conversation on channel_inbox (conversation_id)")
    db.execute(
        """create table channel_outbox (
            id integer primary key,
            conversation_id text not null references conversations(id) on delete cascade,
            platform text not null,
            address text not null,  -- JSON
            source_message_id integer not null,  -- the csbot message it delivers
            kind text not null,  -- reply | agent | handoff | notice
            -- JSON {text, buttons}: rendered into API calls when sent, so that no token
            -- is stored and a rotated one applies to what is still waiting
            message text not null,
            calls_done integer not null default 0,  -- of a message sent as several calls
            status text not null,  -- pending | sent | failed
            attempts integer not null default 0,
            next_attempt_at text not null,
            last_error text,
            created_at text not null,
            sent_at text
        )"""
    )
    # a message is queued for its platform once, whichever worker or replica sees it first
    db.execute("create unique index channel_outbox_by_source on channel_outbox (platform, source_message_id)")
    db.execute("create index channel_outbox_due on channel_outbox (status, next_attempt_at)")
    db.execute("create index channel_outbox_by_conversation on channel_outbox (conversation_id)")
    # where a platform conversation's customer was last reached (agents' messages go there)
    db.execute(
        """create table channel_addresses (
            conversation_id text primary key references conversations(id) on delete cascade,
            platform text not null,
            address text not null,  -- JSON
            updated_at text not null
        )"""
    )


@migrations()
def m007_replicas(db: Database) -> None:
    # the `csbot serve` replicas sharing this store, with the settings that must agree
    # across them (JSON); a newcomer with other settings is refused (bot.store.replicas).
    # Times are UTC ISO text of fixed width, so that text order is time order.
    db.execute(
        """create table replicas (
            id text primary key,  -- host:pid:random
            host text not null,
            pid integer not null,
            started_at text not null,
            heartbeat_at text not null,  -- refreshed while it runs; older than the live window: dead
            settings text not null  -- JSON {dotted key: text}
        )"""
    )
