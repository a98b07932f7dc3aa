"""One connection to the conversation store's SQLite file: opened owner-only, in WAL mode,
migrated to the current schema, with the write transaction every multi-row write uses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Self

from sqlite_utils import Database

from bot.store.errors import StoreError
from bot.store.schema import migrations


class StoreConnection:
    """The store's lifecycle (open, close, `with`) and its write transaction."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db: Database | None = None

    def open(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # customers' messages: readable by the service's own user only. SQLite gives the
        # -wal and -shm files the database file's mode, so setting it here covers them.
        # Create the file only when it is new (O_EXCL): closing any descriptor of a file
        # the process already has open in SQLite would drop that connection's locks.
        with suppress(FileExistsError):
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
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

    def __enter__(self) -> Self:
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
