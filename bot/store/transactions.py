"""One write transaction that waits a bounded time for SQLite's write lock."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlite_utils import Database

from bot.store.errors import StoreUnavailableError


@contextmanager
def immediate_transaction(db: Database, *, wait_s: float, where: str, fix: str) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception), waiting up to `wait_s` for
    another writer's lock; past it `StoreUnavailableError(where, ..., fix)`. Taking the
    write lock first makes what the block reads final until it commits: two processes
    that check and then write (a migration, a replica's registration) cannot interleave."""
    conn = db.conn
    (previous_wait_ms,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StoreUnavailableError(where, f"its write lock stayed taken for {wait_s:g} s ({e})", fix) from e
        with committed_or_rolled_back(conn):
            yield
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(previous_wait_ms)}")


@contextmanager
def committed_or_rolled_back(conn: sqlite3.Connection) -> Iterator[None]:
    """The end of a transaction the caller began: COMMIT when the block ends, ROLLBACK (if
    SQLite has not already rolled back) when it raises anything, a kill signal included."""
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
