"""Opening the store file: owner-only permissions, WAL mode, migrations applied once, locks kept,
and concurrent writers queueing for the write lock (real SQLite files in a temp dir)."""

import os
import stat
import subprocess
import sys
import threading

from bot.store import ConversationStore
from tests.bot.store.helpers import turn


def test_opens_migrated_with_a_schema_version_and_sqlite_in_wal_mode(store):
    assert store.schema_version == 7
    if store.db.dialect == "sqlite":
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_applies_no_migration_twice(tmp_path):
    ConversationStore(tmp_path / "s.db").open().close()
    with ConversationStore(tmp_path / "s.db").open() as again:
        assert again.schema_version == 7


def test_the_store_file_is_readable_by_its_owner_only(tmp_path):
    with ConversationStore(tmp_path / "s.db").open() as store:
        turn(store, store.create_conversation())
        for name in ("s.db", "s.db-wal"):
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name


def test_opening_the_store_again_keeps_the_locks_other_processes_rely_on(tmp_path):
    # closing any descriptor of a file drops every SQLite lock this process holds on it;
    # a second open that did so let another process delete the live WAL file under us
    path = tmp_path / "s.db"
    with ConversationStore(path).open() as server:
        cid = server.create_conversation()
        turn(server, cid)
        with ConversationStore(path).open():  # e.g. the store worker beside the inference workers
            pass
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sqlite3; sqlite3.connect({str(path)!r}).execute('select count(*) from messages').fetchall()",
            ],
            check=True,
        )
        turn(server, cid)
        with ConversationStore(path).open() as reader:
            assert len(reader.messages(cid)) == 4


def test_two_connections_taking_turns_at_once_both_succeed(tmp_path):
    """Two inference workers (or replicas) write turns side by side; neither fails with
    "database is locked", and every turn is stored whole."""
    path = tmp_path / "shared.db"
    ConversationStore(path).open().close()
    errors: list[BaseException] = []
    conversations: list[str] = []

    def writer() -> None:
        with ConversationStore(path).open() as own:
            cid = own.create_conversation()
            conversations.append(cid)
            try:
                for _ in range(40):
                    turn(own, cid)
            except BaseException as e:  # noqa: BLE001 - collected and asserted below
                errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with ConversationStore(path).open() as store:
        assert [len(store.messages(c)) for c in conversations] == [80, 80, 80]
