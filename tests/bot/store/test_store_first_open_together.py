"""Replicas started together on a new SQLite store: six real processes open the same new
file at the same moment, several rounds. Every one must open it (one applies the schema, the
others wait for it), none may fail with "database is locked" while switching the file to WAL,
nor take the half-made store for another program's database."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

PROCESSES = 6
ROUNDS = 4


def open_at(path: Path, moment: float, results) -> None:
    from bot.store import ConversationStore

    while time.time() < moment:  # every process past its imports, then all at once
        pass
    try:
        with ConversationStore(path).open() as store:
            results.put(("ok", store.schema_version))
    except Exception as e:  # noqa: BLE001 - reported to the test, which names it
        results.put(("error", f"{type(e).__name__}: {e}"))


@pytest.mark.slow
def test_processes_opening_a_new_store_at_the_same_moment_all_open_it(tmp_path):
    spawn = multiprocessing.get_context("spawn")
    for round_no in range(ROUNDS):
        path = tmp_path / f"round{round_no}" / "store.db"
        results = spawn.Queue()
        moment = time.time() + 4
        processes = [spawn.Process(target=open_at, args=(path, moment, results)) for _ in range(PROCESSES)]
        for p in processes:
            p.start()
        outcomes = [results.get(timeout=120) for _ in processes]
        for p in processes:
            p.join(timeout=60)
        errors = [detail for kind, detail in outcomes if kind == "error"]
        assert not errors, f"round {round_no}: {errors}"
        # one schema for all: every process saw the same, complete one
        assert len({detail for _, detail in outcomes}) == 1, outcomes


def test_a_schema_upgrade_committed_between_the_checks_reads_is_taken_for_ours(tmp_path):
    """The moment the race above rarely meets, made to happen every time: the check reads
    that the new file has no migrations, another process's upgrade commits, the check then
    lists the tables. That store is ours, half a second old, not another program's."""
    from sqlite_utils import Database

    from bot.store.database import SqliteDatabase
    from bot.store.schema import apply_pending, check_schema, known_migrations

    path = tmp_path / "store.db"
    checking, upgrading = Database(path), Database(path)
    checking.enable_wal()
    table_lists = 0

    def upgrade_before_the_second_table_list(sql: str) -> None:
        nonlocal table_lists
        if "sqlite_master" in sql:
            table_lists += 1
            if table_lists == 2:  # check_schema is about to list the tables
                apply_pending(SqliteDatabase(upgrading, str(path)), str(path))

    checking.conn.set_trace_callback(upgrade_before_the_second_table_list)
    state = check_schema(SqliteDatabase(checking, str(path)), str(path))
    assert table_lists >= 2 and state.applied == known_migrations() and state.pending == []
