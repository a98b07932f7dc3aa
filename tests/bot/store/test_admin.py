"""Administering a store file: schema status, upgrades that are all or nothing and that two
processes can run at once, the refusal of a store a newer csbot migrated or of a file that
is no store, and conversations exported to JSONL and imported back. Real SQLite files,
real processes for the concurrency and the kill."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlite_utils import Database, Migrations

from bot.store import (
    SCHEMA_NAME,
    ConversationImportError,
    ConversationStore,
    DialogueState,
    MessageRecord,
    NotAStoreError,
    SchemaTooNewError,
    StoreUnavailableError,
    m001_initial,
    m002_agent_edits,
    m003_web_channel,
    m004_public_access,
    m005_agent_panel,
    m006_channels,
    m007_replicas,
)
from bot.store.admin import export_conversations, import_conversations, refuse_newer_schema, schema_status, upgrade
from bot.store.database import SqliteDatabase
from bot.store.schema import apply_pending, known_migrations, migrations
from retrieval.config import ImportConfig
from tests.bot.store.helpers import turn
from tests.helpers import REPO

RELEASED = (
    m001_initial,
    m002_agent_edits,
    m003_web_channel,
    m004_public_access,
    m005_agent_panel,
    m006_channels,
    m007_replicas,
)
KNOWN = [f.__name__ for f in RELEASED]


def _applied(path: Path) -> list[str]:
    if "_sqlite_migrations" not in _tables(path):
        return []
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("select name from _sqlite_migrations where migration_set = 'csbot'")]


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("select name from sqlite_master where type = 'table'")}


def _mark_newer(path: Path, *names: str) -> None:
    """What a newer csbot leaves behind: migrations this code has never heard of."""
    with sqlite3.connect(path) as db:
        for name in names:
            db.execute(
                "insert into _sqlite_migrations (migration_set, name, applied_at) values ('csbot', ?, '2027-01-01')",
                [name],
            )


# -- status, upgrade, refusal ------------------------------------------------------------


def test_the_known_migrations_are_the_released_ones_in_order_and_all_transactional():
    assert known_migrations() == KNOWN
    with Database(memory=True) as empty:
        assert all(m.transactional for m in migrations.pending(empty))


def test_status_of_a_missing_store_creates_nothing_and_says_every_migration_is_pending(tmp_path):
    status = schema_status(tmp_path / "store.db")
    assert (status.exists, status.schema.applied, status.schema.pending) == (False, [], KNOWN)
    assert not (tmp_path / "store.db").exists()


def test_upgrade_creates_a_store_then_finds_nothing_to_do(tmp_path):
    path = tmp_path / "store.db"
    assert upgrade(path) == KNOWN
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert upgrade(path) == []
    status = schema_status(path).schema
    assert (status.applied, status.pending, status.unknown) == (KNOWN, [], [])


def test_a_store_made_by_an_older_release_is_upgraded_keeping_its_rows(tmp_path):
    path = tmp_path / "store.db"
    older = Migrations(SCHEMA_NAME)
    for migration in RELEASED[:3]:
        older()(migration)
    with Database(path) as db:
        older.apply(db)
        db["conversations"].insert(
            {"id": "c1", "channel": "cli", "status": "open", "state": "{}", "created_at": "x", "updated_at": "x"}
        )
    assert schema_status(path).schema.pending == KNOWN[3:]
    assert upgrade(path) == KNOWN[3:]
    with ConversationStore(path) as store:
        assert store.conversation("c1")["handling"] == "bot"  # m005's column, with its default


def test_a_store_migrated_by_a_newer_csbot_is_refused_at_open_naming_what_it_does_not_know(tmp_path):
    path = tmp_path / "store.db"
    upgrade(path)
    _mark_newer(path, "m008_something_new", "m009_more")
    before = path.read_bytes()
    for attempt in (lambda: ConversationStore(path).open(), lambda: upgrade(path), lambda: refuse_newer_schema(path)):
        with pytest.raises(SchemaTooNewError) as caught:
            attempt()
        assert caught.value.unknown == ["m008_something_new", "m009_more"]
        assert "m008_something_new, m009_more" in str(caught.value) and "upgrade csbot" in str(caught.value)
    assert path.read_bytes() == before
    status = schema_status(path)  # status reports it rather than refusing
    assert status.schema.newer_than_known and status.schema.unknown == ["m008_something_new", "m009_more"]


def test_a_current_or_absent_store_passes_the_start_check(tmp_path):
    refuse_newer_schema(tmp_path / "absent.db")
    upgrade(tmp_path / "store.db")
    refuse_newer_schema(tmp_path / "store.db")
    assert not (tmp_path / "absent.db").exists()


def test_a_file_that_is_not_sqlite_is_refused_as_not_a_store(tmp_path):
    path = tmp_path / "store.db"
    path.write_text("these are my notes, not a database\n" * 200)
    for attempt in (lambda: schema_status(path), lambda: upgrade(path), lambda: ConversationStore(path).open()):
        with pytest.raises(NotAStoreError, match="is not a csbot store"):
            attempt()


def test_another_programs_sqlite_database_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("create table invoices (id integer primary key, total real)")
    with pytest.raises(NotAStoreError, match="invoices"):
        ConversationStore(path).open()
    with pytest.raises(NotAStoreError):
        schema_status(path)
    assert _tables(path) == {"invoices"}


def test_a_directory_where_the_store_should_be_is_one_typed_error(tmp_path):
    (tmp_path / "store.db").mkdir()
    with pytest.raises(StoreUnavailableError, match="is a directory"):
        upgrade(tmp_path / "store.db")


# -- interrupted and concurrent upgrades -------------------------------------------------


def _released_and(*extra) -> Migrations:
    """The released migrations followed by `extra`: what a next release would ship."""
    migration_set = Migrations(SCHEMA_NAME)
    for migration in (*RELEASED, *extra):
        migration_set()(migration)
    return migration_set


def test_a_migration_that_fails_half_way_leaves_the_store_as_it_was_and_a_rerun_completes_it(tmp_path):
    path = tmp_path / "store.db"
    with ConversationStore(path) as store:
        turn(store, store.create_conversation(conversation_id="c1"))

    def m008_ratings_archive(db: Database) -> None:
        db.execute("create table ratings_archive (id integer primary key, rating text)")
        db.execute("insert into ratings_archive (rating) select rating from feedback")
        db.execute("alter table messages add column archived integer")
        raise RuntimeError("disk full, say, half way through")

    with Database(path) as db, pytest.raises(RuntimeError, match="half way"):
        apply_pending(SqliteDatabase(db, str(path)), str(path), _released_and(m008_ratings_archive))
    assert _applied(path) == KNOWN
    assert "ratings_archive" not in _tables(path)
    with ConversationStore(path) as store:
        assert "archived" not in store.db.sqlite["messages"].columns_dict
        assert len(store.messages("c1")) == 2

    def m008_ratings_archive_fixed(db: Database) -> None:
        db.execute("create table ratings_archive (id integer primary key, rating text)")
        db.execute("alter table messages add column archived integer")

    m008_ratings_archive_fixed.__name__ = "m008_ratings_archive"
    with Database(path) as db:
        assert apply_pending(SqliteDatabase(db, str(path)), str(path), _released_and(m008_ratings_archive_fixed)) == [
            "m008_ratings_archive"
        ]
    assert _applied(path) == [*KNOWN, "m008_ratings_archive"] and "ratings_archive" in _tables(path)


def test_a_failure_in_a_later_migration_undoes_the_earlier_ones_of_the_same_upgrade(tmp_path):
    path = tmp_path / "store.db"

    def m008_broken(db: Database) -> None:
        raise RuntimeError("broken")

    with Database(path) as db, pytest.raises(RuntimeError):
        apply_pending(SqliteDatabase(db, str(path)), str(path), _released_and(m008_broken))
    assert _applied(path) == [] and "conversations" not in _tables(path)
    assert upgrade(path) == KNOWN  # this release's own migrations apply cleanly afterwards


# a process that upgrades `path` with the released migrations plus a slow m008: it says
# "holding" from inside m008 (the write lock taken, nothing committed), then waits for `go`
# to exist before finishing; with mode "peek" it first prints what it sees pending
UPGRADER = r"""
import json, sys, time
from pathlib import Path
from sqlite_utils import Database, Migrations
from bot.store import SCHEMA_NAME
from bot.store.database import SqliteDatabase
from bot.store.schema import apply_pending, migrations, schema_state

path, go, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
released = Migrations(SCHEMA_NAME)
for migration in migrations.pending(Database(memory=True)):  # every released one, in order
    released()(migration.fn)

@released()
def m008_slow(db):
    db.execute("create table slow_one (id integer primary key)")
    db.execute("insert into slow_one default values")
    print("holding", flush=True)
    while not go.exists():
        time.sleep(0.02)

db = Database(path)
db.enable_wal()
if mode == "peek":
    print(json.dumps(schema_state(SqliteDatabase(db, str(path)), released).pending), flush=True)
print(json.dumps(apply_pending(SqliteDatabase(db, str(path)), str(path), released)), flush=True)
"""


def _upgrader(path: Path, go: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", UPGRADER, str(path), str(go), mode],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow  # two Python processes
def test_two_processes_upgrading_at_once_one_applies_and_the_other_waits_then_finds_nothing(tmp_path):
    path, go = tmp_path / "store.db", tmp_path / "go"
    first = _upgrader(path, go, "run")
    assert first.stdout is not None and first.stdout.readline().strip() == "holding"
    second = _upgrader(path, go, "peek")
    assert second.stdout is not None
    # the second saw everything pending (the first has committed nothing) before it asked for the lock
    assert json.loads(second.stdout.readline()) == [*KNOWN, "m008_slow"]
    go.touch()
    first_out, first_err = first.communicate(timeout=60)
    second_out, second_err = second.communicate(timeout=60)
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert json.loads(first_out) == [*KNOWN, "m008_slow"]
    assert json.loads(second_out) == []
    assert _applied(path) == [*KNOWN, "m008_slow"]
    with sqlite3.connect(path) as db:
        assert db.execute("select count(*) from slow_one").fetchone() == (1,)  # applied once


@pytest.mark.slow  # two Python processes
def test_a_process_killed_in_the_middle_of_an_upgrade_leaves_nothing_half_done(tmp_path):
    path, go = tmp_path / "store.db", tmp_path / "go"
    with ConversationStore(path) as store:
        turn(store, store.create_conversation(conversation_id="c1"))
    upgrading = _upgrader(path, go, "run")
    assert upgrading.stdout is not None and upgrading.stdout.readline().strip() == "holding"
    os.kill(upgrading.pid, signal.SIGKILL)
    upgrading.wait(timeout=30)
    assert _applied(path) == KNOWN and "slow_one" not in _tables(path)
    go.touch()  # the rerun runs the same release to the end
    rerun = _upgrader(path, go, "run")
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert out.splitlines()[-1] == json.dumps(["m008_slow"])
    assert _applied(path) == [*KNOWN, "m008_slow"]
    with pytest.raises(SchemaTooNewError, match="m008_slow"):  # this release now meets a newer schema
        ConversationStore(path).open()


# -- export and import -------------------------------------------------------------------


@pytest.fixture
def filled(tmp_path) -> Path:
    """A store with a web conversation (token, buttons, sources, a rating, CSAT, a handoff and
    an agent's edited reply), a plain CLI one, and an empty one."""
    path = tmp_path / "source.db"
    with ConversationStore(path) as store:
        web = store.create_conversation(channel="web", conversation_id="web-1", token_hash="ab" * 32)
        bot_id = store.record_turn(
            web,
            MessageRecord("customer", "my kettle arrived cracked", client_message_id="m-1"),
            MessageRecord(
                "bot",
                "Sorry to hear that! Shall I start a replacement?",
                intent="damaged_item",
                confidence=0.91,
                out_of_scope=False,
                action="answer",
                sources=(("kb-damaged#c0", 0.8123),),
                composer="retrieval",
                latency_ms=14.0,
                buttons=("Yes", "No"),
            ),
            DialogueState(slots={"order_id": "40318275"}, active_intent="damaged_item", handed_off=True),
            handoff_reason="customer asked for a human",
        )
        store.add_feedback(bot_id, "down", "not what I asked")
        store.record_agent_message(web, "A replacement kettle ships today.", edited_from="We will send one.")
        store.add_csat(web, 4, "quick")
        cli = store.create_conversation(conversation_id="cli-1")
        turn(store, cli, "where is my order", "Could you tell me your order number?")
        store.create_conversation(conversation_id="empty-1")
    return path


def _conversation_view(store: ConversationStore, conversation_id: str) -> dict:
    """A conversation as the store's API reads it, without the ids the target renumbers."""
    messages = [{k: v for k, v in m.items() if k != "id"} for m in store.messages(conversation_id)]
    votes = store.feedback_votes()
    ratings = [votes.get(m["id"]) for m in store.messages(conversation_id)]
    handoffs = [{k: v for k, v in h.items() if k not in ("id", "message_id")} for h in store.handoffs(conversation_id)]
    csat = [{k: v for k, v in c.items() if k != "id"} for c in store.csat(conversation_id)]
    return {
        "conversation": store.conversation(conversation_id),
        "messages": messages,
        "ratings": ratings,
        "handoffs": handoffs,
        "csat": csat,
    }


def test_export_then_import_into_an_empty_store_then_export_again_gives_the_same_file(filled, tmp_path):
    first = export_conversations(filled, tmp_path / "first.jsonl")
    assert (first.conversations, first.messages) == (3, 5)
    assert stat.S_IMODE(os.stat(tmp_path / "first.jsonl").st_mode) == 0o600  # customers' words
    imported = import_conversations(tmp_path / "target.db", tmp_path / "first.jsonl")
    assert (imported.conversations, imported.messages) == (3, 5)
    export_conversations(tmp_path / "target.db", tmp_path / "second.jsonl")
    assert (tmp_path / "second.jsonl").read_bytes() == (tmp_path / "first.jsonl").read_bytes()
    with ConversationStore(filled) as source, ConversationStore(tmp_path / "target.db") as target:
        for cid in ("web-1", "cli-1", "empty-1"):
            assert _conversation_view(target, cid) == _conversation_view(source, cid), cid


def test_an_exported_line_is_the_importers_conversation_shape_with_the_store_fields(filled, tmp_path):
    export_conversations(filled, tmp_path / "out.jsonl")
    web = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert (web["id"], web["intent"], web["outcome"]) == ("web-1", "damaged_item", "escalated")
    assert [(t["role"], t["text"]) for t in web["turns"]] == [
        ("customer", "my kettle arrived cracked"),
        ("bot", "Sorry to hear that! Shall I start a replacement?"),
        ("agent", "A replacement kettle ships today."),
    ]
    assert web["turns"][1]["feedback"]["rating"] == "down" and web["turns"][1]["buttons"] == ["Yes", "No"]
    assert web["handoffs"][0]["turn"] == 1 and web["csat"]["score"] == 4
    assert web["state"]["slots"] == {"order_id": "40318275"}


def test_a_conversation_an_agent_held_comes_in_waiting_for_an_agent(filled, tmp_path):
    with ConversationStore(filled) as store:
        store.db.execute("update conversations set handling = 'open' where id = 'web-1'")
    export_conversations(filled, tmp_path / "out.jsonl")
    import_conversations(tmp_path / "target.db", tmp_path / "out.jsonl")
    with ConversationStore(tmp_path / "target.db") as target:
        assert target.handling("web-1") == "pending"


def test_a_transcript_in_the_importers_format_imports_with_its_roles_and_texts(tmp_path):
    lines = (REPO / "data" / "conversations.jsonl").read_text().splitlines()[:3]
    (tmp_path / "transcripts.jsonl").write_text("\n".join(lines) + "\n")
    report = import_conversations(tmp_path / "store.db", tmp_path / "transcripts.jsonl")
    assert report.conversations == 3
    with ConversationStore(tmp_path / "store.db") as store:
        for line in lines:
            conversation = json.loads(line)
            stored = store.messages(conversation["id"])
            assert [(m["role"], m["text"]) for m in stored] == [(t["role"], t["text"]) for t in conversation["turns"]]
            assert store.conversation(conversation["id"])["channel"] == "import"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", "expected an object"),
        ('{"turns": [{"role": "customer", "text": "hi"}]}', "'id'"),
        ('{"id": "x", "turns": {}}', "'turns'"),
        ('{"id": "x", "turns": [{"role": "robot", "text": "hi"}]}', "turn 1: role 'robot'"),
        ('{"id": "x", "turns": [{"role": "bot", "text": "hi", "confidence": "high"}]}', "'confidence'"),
        ('{"id": "x", "turns": [{"role": "bot", "text": "hi", "feedback": {"rating": 5}}]}', "'feedback'"),
        ('{"id": "x", "csat": {"score": 9}, "turns": [{"role": "customer", "text": "hi"}]}', "'csat'"),
        ('{"id": "x", "handoffs": [{"reason": "r", "turn": 4}], "turns": [{"role": "bot", "text": "hi"}]}', "turn 4"),
        ('{"id": "x", "state": "slots", "turns": [{"role": "bot", "text": "hi"}]}', "'state'"),
        (
            '{"id": "x", "turns": [{"role": "customer", "text": "a", "client_message_id": "m"}, '
            '{"role": "customer", "text": "b", "client_message_id": "m"}]}',
            "client_message_id used twice",
        ),
        ("[" * 100 + "]" * 100, "nested"),
    ],
)
def test_a_bad_line_is_refused_by_number_and_nothing_is_imported(tmp_path, line, reason):
    good = '{"id": "fine-1", "turns": [{"role": "customer", "text": "hello"}]}'
    (tmp_path / "in.jsonl").write_text(f"{good}\n{line}\n")
    with pytest.raises(ConversationImportError, match="line 2") as caught:
        import_conversations(tmp_path / "store.db", tmp_path / "in.jsonl")
    assert reason in str(caught.value) and "Nothing was imported" in str(caught.value)
    with ConversationStore(tmp_path / "store.db") as store:
        assert not store.conversation_exists("fine-1")


def test_an_id_the_store_already_has_is_refused_and_nothing_is_imported(filled, tmp_path):
    (tmp_path / "in.jsonl").write_text(
        '{"id": "new-1", "turns": [{"role": "customer", "text": "hello"}]}\n'
        '{"id": "cli-1", "turns": [{"role": "customer", "text": "hello"}]}\n'
    )
    with pytest.raises(ConversationImportError, match=r"line 2: conversation id 'cli-1' is already in the store"):
        import_conversations(filled, tmp_path / "in.jsonl")
    with ConversationStore(filled) as store:
        assert not store.conversation_exists("new-1") and len(store.messages("cli-1")) == 2


def test_a_line_over_the_size_limit_is_refused_without_reading_it_whole(tmp_path):
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "big", "turns": [{"role": "customer", "text": "x" * 5000}]}))
    with pytest.raises(ConversationImportError, match=r"line 1: the line is over ImportConfig\.max_file_bytes"):
        import_conversations(tmp_path / "store.db", tmp_path / "in.jsonl", ImportConfig(max_file_bytes=1000))


def test_an_empty_file_and_a_missing_file_are_refused(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ConversationImportError, match="no conversations"):
        import_conversations(tmp_path / "store.db", tmp_path / "empty.jsonl")
    with pytest.raises(ConversationImportError, match="no such file"):
        import_conversations(tmp_path / "store.db", tmp_path / "absent.jsonl")


def test_export_refuses_to_overwrite_a_file_and_needs_a_store(filled, tmp_path):
    (tmp_path / "taken.jsonl").write_text("keep me\n")
    with pytest.raises(StoreUnavailableError, match="the file exists"):
        export_conversations(filled, tmp_path / "taken.jsonl")
    assert (tmp_path / "taken.jsonl").read_text() == "keep me\n"
    with pytest.raises(StoreUnavailableError, match="no store file"):
        export_conversations(tmp_path / "absent.db", tmp_path / "out.jsonl")
    assert not (tmp_path / "absent.db").exists() and not (tmp_path / "out.jsonl").exists()
    with pytest.raises(StoreUnavailableError, match="its folder does not exist"):
        export_conversations(filled, tmp_path / "no" / "such" / "out.jsonl")


def test_an_export_while_turns_are_written_reads_one_consistent_snapshot(filled, tmp_path):
    with ConversationStore(filled) as writer:
        writer.db.conn.execute("BEGIN IMMEDIATE")  # a turn in progress in another connection
        turn(writer, "cli-1", "still there?", "Yes!")
        report = export_conversations(filled, tmp_path / "out.jsonl")
        writer.db.conn.execute("COMMIT")
    # the export ran while the writer held the lock (WAL readers do not wait) and left its turn out
    assert report.messages == 5
