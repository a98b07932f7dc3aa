"""The two databases the conversation store runs on, behind one small interface.

- SQLite (the default): one file in the workspace, through sqlite-utils, in WAL mode. One
  process or a few on one host.
- PostgreSQL (`CSBOT_DATABASE_URL=postgresql://...`): through psycopg 3. Several replicas on
  several hosts share it.

The store's SQL is written once, in the subset both understand (`?` placeholders or
`:name` ones, `on conflict`, `returning`); `PostgresDatabase` rewrites the placeholders to
psycopg's. Both raise the same typed errors: a broken constraint is `ConstraintError`, a
database that cannot be reached or stays locked is `StoreUnavailableError` (503 with
Retry-After at the HTTP edge; the PostgreSQL connection is made again on the next call,
so a restarted server needs no restart of csbot).

Write transactions serialize every writer, on both: SQLite's BEGIN IMMEDIATE takes its one
write lock; PostgreSQL's takes one transaction-scoped advisory lock. What a write
transaction reads is therefore final until it commits (a turn reads the conversation's next
turn number, a migration reads what is applied), the same guarantee on both.
"""

from __future__ import annotations

import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from bot.store.errors import ConstraintError, StoreUnavailableError

if TYPE_CHECKING:
    import psycopg
    from sqlite_utils import Database as SqliteUtilsDatabase

Params = Sequence[Any] | Mapping[str, Any] | None
Dialect = Literal["sqlite", "postgresql"]

# the one advisory lock every PostgreSQL write transaction takes (any constant of our own)
WRITE_LOCK_KEY = 0x637362_6F74  # "csbot"
# how long a write waits for another writer by default (SQLite's busy_timeout, the same on PostgreSQL)
DEFAULT_WRITE_WAIT_S = 5.0
# how long a PostgreSQL connection attempt may take before the store is called unavailable
CONNECT_TIMEOUT_S = 5
_UNREACHABLE_FIX = "check that the database is running and that CSBOT_DATABASE_URL names it"


class Cursor(Protocol):
    """What a write returns: the rows it changed, and any rows it returned (as tuples)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


def is_database_url(target: object) -> bool:
    """Whether a store target names a PostgreSQL server rather than a SQLite file."""
    return isinstance(target, str) and target.split("://", 1)[0] in ("postgresql", "postgres")


def redacted_url(url: str) -> str:
    """The URL with any password replaced by ***: what messages and logs may show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class SqlDatabase(ABC):
    """One connection to the store's database (one thread uses it at a time).

    `query` returns rows as dicts; `execute` returns a `Cursor` whose rows are tuples."""

    dialect: Dialect
    where: str  # the file or the redacted URL: what error messages name

    @abstractmethod
    def query(self, sql: str, params: Params = None) -> Iterator[dict[str, Any]]: ...

    @abstractmethod
    def execute(self, sql: str, params: Params = None) -> Cursor: ...

    @property
    @abstractmethod
    def in_transaction(self) -> bool: ...

    @abstractmethod
    def commit(self) -> None:
        """End the implicit transaction a lone write opened (a no-op where there is none)."""

    @abstractmethod
    @contextmanager
    def write_transaction(self, wait_s: float = DEFAULT_WRITE_WAIT_S, fix: str = "") -> Iterator[None]:
        """One transaction that takes the write lock first, waiting up to `wait_s` for it
        (past it: `StoreUnavailableError` with `fix`); COMMIT when the block ends, ROLLBACK
        when it raises. Inside another write transaction: a savepoint of it."""

    @abstractmethod
    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """A read-only transaction: every read in the block sees the database as it was when
        the first read ran, whatever other connections commit meanwhile."""

    @abstractmethod
    def table_names(self) -> list[str]: ...

    @abstractmethod
    def close(self) -> None: ...

    def insert(self, table: str, row: Mapping[str, Any], *, returning_id: bool = True) -> int | None:
        """Insert one row; the new row's integer `id` when `returning_id` (tables keyed by it)."""
        columns = list(row)
        sql = f"insert into {table} ({', '.join(columns)}) values ({', '.join('?' for _ in columns)})"
        lone = not self.in_transaction
        if not returning_id:
            self.execute(sql, [row[c] for c in columns])
            found = None
        else:
            # fetchall: SQLite keeps a RETURNING statement (and its table lock) open until it is read to the end
            ((found,),) = self.execute(sql + " returning id", [row[c] for c in columns]).fetchall()
        if lone:  # a write of its own is committed at once, as sqlite-utils' inserts are
            self.commit()
        return None if found is None else int(found)

    def rows_where(
        self, table: str, where: str | None = None, params: Params = None, order_by: str | None = None
    ) -> Iterator[dict[str, Any]]:
        sql = (
            f"select * from {table}"
            + (f" where {where}" if where else "")
            + (f" order by {order_by}" if order_by else "")
        )
        return self.query(sql, params)

    def count_where(self, table: str, where: str, params: Params = None) -> int:
        (n,) = self.execute(f"select count(*) from {table} where {where}", params).fetchone()
        return int(n)


class SqliteDatabase(SqlDatabase):
    """A SQLite file through sqlite-utils (`.sqlite` for what only SQLite has: migrations,
    PRAGMAs)."""

    dialect: Dialect = "sqlite"

    def __init__(self, db: SqliteUtilsDatabase, where: str):
        self.sqlite, self.where = db, where

    @property
    def conn(self) -> sqlite3.Connection:
        return self.sqlite.conn

    def query(self, sql: str, params: Params = None) -> Iterator[dict[str, Any]]:
        try:
            yield from self.sqlite.query(sql, _sqlite_params(params))
        except sqlite3.IntegrityError as e:
            raise ConstraintError(self.where, str(e)) from e

    def execute(self, sql: str, params: Params = None) -> Cursor:
        try:
            return self.sqlite.execute(sql, _sqlite_params(params))
        except sqlite3.IntegrityError as e:
            raise ConstraintError(self.where, str(e)) from e
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise StoreUnavailableError(self.where, f"its write lock stayed taken ({e})", "retry shortly") from e
            raise

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def commit(self) -> None:
        self.conn.commit()

    @contextmanager
    def write_transaction(self, wait_s: float = DEFAULT_WRITE_WAIT_S, fix: str = "") -> Iterator[None]:
        # Why BEGIN IMMEDIATE rather than a plain (deferred) BEGIN: a transaction that has read
        # cannot wait for the write lock; when another connection committed in between, SQLite
        # fails it at once with "database is locked" (SQLITE_BUSY_SNAPSHOT; busy_timeout does
        # not apply). Taking the lock up front makes concurrent writers queue instead.
        if self.conn.in_transaction:
            with self.sqlite.atomic():
                yield
            return
        # the connection waits DEFAULT_WRITE_WAIT_S (open_sqlite's busy_timeout); others are set for the block
        previous_wait_ms = None
        if wait_s != DEFAULT_WRITE_WAIT_S:
            (previous_wait_ms,) = self.conn.execute("PRAGMA busy_timeout").fetchone()
            self.conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
        try:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                reason = f"its write lock stayed taken for {wait_s:g} s ({e})"
                raise StoreUnavailableError(self.where, reason, fix or "retry shortly") from e
            with _committed_or_rolled_back(self):
                yield
        finally:
            if previous_wait_ms is not None:
                self.conn.execute(f"PRAGMA busy_timeout = {int(previous_wait_ms)}")

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        self.conn.execute("BEGIN")  # deferred: the snapshot is taken by the first read (WAL)
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def table_names(self) -> list[str]:
        return self.sqlite.table_names()

    def close(self) -> None:
        self.sqlite.close()


class PostgresDatabase(SqlDatabase):
    """A PostgreSQL database through one psycopg connection, in autocommit mode outside
    write transactions. A connection the server dropped (a restart, a network cut) is made
    again on the next call; the call that found it broken raises `StoreUnavailableError`."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str):
        self.url, self.where = url, redacted_url(url)
        self._conn: psycopg.Connection[Any] | None = None
        self._depth = 0  # nested write transactions (savepoints) open now

    def connect(self) -> PostgresDatabase:
        import psycopg

        try:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            # how long any lock is waited for, the write lock included (SQLite's busy_timeout);
            # set once here, so that a write transaction costs no statement to set it
            self._conn.execute(f"set lock_timeout = {int(DEFAULT_WRITE_WAIT_S * 1000)}")
        except psycopg.OperationalError as e:
            raise StoreUnavailableError(self.where, _first_line(e), _UNREACHABLE_FIX) from None
        except psycopg.ProgrammingError as e:  # a malformed URL
            raise StoreUnavailableError(
                self.where, _first_line(e), "write it as postgresql://user@host:5432/db"
            ) from None
        return self

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            if self._depth:  # never reconnect inside a transaction: what it wrote is gone
                raise StoreUnavailableError(self.where, "the connection closed inside a transaction", _UNREACHABLE_FIX)
            self.connect()
        assert self._conn is not None
        return self._conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.IntegrityError as e:
            raise ConstraintError(self.where, _first_line(e)) from e
        except psycopg.errors.LockNotAvailable as e:
            raise StoreUnavailableError(self.where, "its write lock stayed taken", "retry shortly") from e
        except (psycopg.OperationalError, psycopg.InterfaceError) as e:
            if self._conn is not None and (self._conn.broken or self._conn.closed):
                with suppress(Exception):
                    self._conn.close()
            raise StoreUnavailableError(self.where, _first_line(e), _UNREACHABLE_FIX) from e

    def query(self, sql: str, params: Params = None) -> Iterator[dict[str, Any]]:
        from psycopg.rows import dict_row

        with self._errors():
            # fetched whole: the connection is free for the caller's next statement at once
            rows = self.conn.cursor(row_factory=dict_row).execute(*_postgres_statement(sql, params)).fetchall()
        yield from rows

    def execute(self, sql: str, params: Params = None) -> Cursor:
        with self._errors():
            return self.conn.execute(*_postgres_statement(sql, params))

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def commit(self) -> None:
        """Autocommit: a lone write is committed already."""

    @contextmanager
    def write_transaction(self, wait_s: float = DEFAULT_WRITE_WAIT_S, fix: str = "") -> Iterator[None]:
        conn = self.conn
        self._depth += 1
        try:
            with self._errors(), conn.transaction():
                if self._depth == 1:
                    # lock_timeout bounds the wait for the advisory lock (LockNotAvailable past it)
                    if wait_s != DEFAULT_WRITE_WAIT_S:
                        conn.execute(f"set local lock_timeout = {int(wait_s * 1000)}")
                    try:
                        conn.execute("select pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
                    except Exception as e:
                        import psycopg

                        if isinstance(e, psycopg.errors.LockNotAvailable):
                            reason = f"its write lock stayed taken for {wait_s:g} s"
                            raise StoreUnavailableError(self.where, reason, fix or "retry shortly") from e
                        raise
                yield
        finally:
            self._depth -= 1

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        conn = self.conn
        self._depth += 1  # no reconnect inside: reads after one would see another snapshot
        try:
            with self._errors(), conn.transaction():
                conn.execute("set transaction isolation level repeatable read, read only")
                yield
        finally:
            self._depth -= 1

    def table_names(self) -> list[str]:
        rows = self.execute("select tablename from pg_tables where schemaname = current_schema() order by tablename")
        return [str(name) for (name,) in rows.fetchall()]

    def close(self) -> None:
        if self._conn is not None:
            with suppress(Exception):
                self._conn.close()
            self._conn = None


@contextmanager
def _committed_or_rolled_back(db: SqliteDatabase) -> Iterator[None]:
    """COMMIT when the block ends, ROLLBACK (unless SQLite already rolled back) when it
    raises anything, a kill signal included."""
    try:
        yield
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


def _sqlite_params(params: Params) -> Sequence[Any] | dict[str, Any] | None:
    return dict(params) if isinstance(params, Mapping) else params


def _postgres_statement(sql: str, params: Params) -> tuple[str, Any]:
    if params is None or (not isinstance(params, Mapping) and len(params) == 0):
        return sql, None
    return postgres_sql(sql), params if isinstance(params, Mapping) else list(params)


# a quoted literal or identifier (kept as it is), a ? placeholder, a :name placeholder, a %
_TOKEN = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")|(\?)|(?<!:):([A-Za-z_]\w*)|(%)")


@lru_cache(maxsize=1024)
def postgres_sql(sql: str) -> str:
    """`sql` with SQLite's placeholders (`?`, `:name`) written as psycopg's (`%s`,
    `%(name)s`) and literal `%` doubled; quoted text is left alone."""

    def rewrite(m: re.Match[str]) -> str:
        quoted, question, name, percent = m.groups()
        if quoted is not None:
            return quoted.replace("%", "%%")
        if question is not None:
            return "%s"
        if name is not None:
            return f"%({name})s"
        assert percent is not None
        return "%%"

    return _TOKEN.sub(rewrite, sql)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
