"""One connection to the conversation store: its SQLite file (opened owner-only, in WAL
mode) or its PostgreSQL database, migrated to the current schema, with the write
transaction every multi-row write uses.

Opening applies pending migrations (SQLite is the embedded default: nothing to run first),
under the write lock and all-or-nothing (`bot.store.schema.apply_pending`), and refuses a
store that a newer csbot migrated (`SchemaTooNewError`) or a file that is no csbot store
(`NotAStoreError`), before anything is written."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Self

from sqlite_utils import Database

from bot.store.database import PostgresDatabase, SqlDatabase, SqliteDatabase, is_database_url, redacted_url
from bot.store.errors import NotAStoreError, StoreError, StoreUnavailableError
from bot.store.schema import applied_migrations, apply_pending


class StoreConnection:
    """The store's lifecycle (open, close, `with`) and its write transaction.

    `target`: the SQLite file (a path), or a PostgreSQL URL (`postgresql://...`)."""

    def __init__(self, target: str | Path):
        self.target = target
        # the file, or the URL with its password hidden: what messages name
        self.path: Path | str = redacted_url(str(target)) if is_database_url(target) else Path(target)
        self._db: SqlDatabase | None = None
        # the migrations the last open() applied (empty when the store was current)
        self.migrations_applied: list[str] = []

    @property
    def on_postgres(self) -> bool:
        return is_database_url(self.target)

    def open(self) -> Self:
        db = PostgresDatabase(str(self.target)).connect() if self.on_postgres else self._open_sqlite()
        try:
            applied = apply_pending(db, db.where)
        except BaseException:
            db.close()
            raise
        self._db, self.migrations_applied = db, applied
        return self

    def _open_sqlite(self) -> SqliteDatabase:
        path = Path(self.target)
        if path.is_dir():
            raise StoreUnavailableError(str(path), "it is a directory", "name the store's file, not its folder")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # customers' messages: readable by the service's own user only. SQLite gives the
            # -wal and -shm files the database file's mode, so setting it here covers them.
            # Create the file only when it is new (O_EXCL): closing any descriptor of a file
            # the process already has open in SQLite would drop that connection's locks.
            with suppress(FileExistsError):
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            os.chmod(path, 0o600)
        except OSError as e:
            raise StoreUnavailableError(
                str(path), e.strerror or str(e), "check that the path is one this user can create and write"
            ) from e
        db = open_sqlite(path)
        try:  # the first reads of the file: where a file that is no SQLite database shows
            # WAL lets readers (the agent panel, evaluations) work while a turn is written.
            _enable_wal(db)
            db.execute("PRAGMA foreign_keys = ON")
            # erased conversations are overwritten on disk, not left in free pages
            db.execute("PRAGMA secure_delete = ON")
        except sqlite3.DatabaseError as e:
            db.close()
            raise sqlite_error(path, e) from e
        return SqliteDatabase(db, str(path))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Self:
        return self if self._db is not None else self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> SqlDatabase:
        if self._db is None:
            raise StoreError(f"store {self.path} is not open; call .open() first")
        return self._db

    @property
    def schema_version(self) -> int:
        """How many schema migrations are applied (bumps with every migration)."""
        return len(applied_migrations(self.db))

    @contextmanager
    def _write_transaction(self) -> Iterator[None]:
        """One transaction that takes the write lock first (see `SqlDatabase.write_transaction`):
        a turn reads the next turn number before it writes, and that number stays final
        until it commits, whichever replica or worker writes at the same time."""
        with self.db.write_transaction():
            yield


def open_sqlite(path: Path) -> Database:
    """A sqlite-utils connection to `path` that waits up to 5 s for another writer's lock."""
    try:
        db = Database(path)
    except sqlite3.Error as e:  # a directory, a path under a file, no permission
        raise sqlite_error(path, e) from e
    db.execute("PRAGMA busy_timeout = 5000")
    return db


def _enable_wal(db: Database, wait_s: float = 10.0) -> None:
    """Switch a new store to WAL, waiting for other processes doing the same. Two processes
    that switch a new file at the same moment can deadlock on its lock, and SQLite then
    fails one at once with "database is locked" instead of waiting (busy_timeout does not
    apply): that one tries again, briefly, until the other has switched it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            db.enable_wal()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def sqlite_error(path: Path, error: sqlite3.Error) -> StoreError:
    """SQLite's error on opening `path`, as the typed error that says what to do."""
    text = str(error)
    if isinstance(error, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return NotAStoreError(str(path), f"SQLite cannot read it ({text})")
    if "locked" in text or "busy" in text:
        return StoreUnavailableError(str(path), text, "another process holds its write lock; try again shortly")
    return StoreUnavailableError(str(path), text, "check that the path is a file this user can read and write")
