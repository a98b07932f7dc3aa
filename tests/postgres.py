"""A real, throwaway PostgreSQL server on 127.0.0.1 for the tests of csbot's PostgreSQL store.

The server is Debian's PostgreSQL (`apt-get install postgresql`, binaries in
/usr/lib/postgresql/<version>/bin), not a mock or an in-process stand-in: the store's SQL,
transactions, locks and reconnects meet the same server they meet in production. Each
`PostgresServer` is its own cluster (initdb) in a temporary directory, listening only on
127.0.0.1 on a free port, its unix socket in that directory (not /var/run/postgresql), every
connection from 127.0.0.1 trusted, and durability traded for speed (fsync, synchronous_commit
and full_page_writes off). Its log goes to `postgres.log` in that directory; a server that does
not start raises `PostgresServerError` with the log's end.

PostgreSQL refuses to run as root; the tests run as root here and in CI, so as root initdb and
the server run as the `postgres` system user (the Debian package creates it), in a directory
that user owns.

Fixtures: `postgres_server` (one server for the session) and `postgres_url` (a fresh empty
database on it per test, dropped afterwards). Without the binaries they skip the test, except
under CI=true, where they fail it: CI must install the package (.ci/run).

Crash caveat: with synchronous_commit off, a commit is acknowledged before its WAL leaves the
server's shared memory, so `kill()` can lose the last fraction of a second of acknowledged
commits (a clean `stop()` or `restart()` loses nothing). A fault test that asserts every
acknowledged write survives a kill needs `PostgresServer(settings={"synchronous_commit": "on"})`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

import psycopg
import pytest
from psycopg import sql

from retrieval.errors import CsbotError
from tests.serving import free_port, log_tail

SUPERUSER = "postgres"
# the system user the Debian package creates; the server runs as it when the tests run as root
SYSTEM_USER = "postgres"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# how `stop(mode)` asks the postmaster to shut down (the signals `pg_ctl stop -m` sends)
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
# fsync off: the data survives a kill of PostgreSQL (the OS keeps it), not of the machine;
# synchronous_commit stays on, so that a commit a client was told of survives a kill -9
SPEED_OVER_DURABILITY = {
    "fsync": "off",
    "synchronous_commit": "on",
    "full_page_writes": "off",
}
MAX_CONNECTIONS = 200  # three csbot replicas with a pool each, plus the test's own connections


class PostgresServerError(CsbotError):
    """The throwaway PostgreSQL server could not be set up, started or stopped."""


def postgres_bin_dir() -> Path | None:
    """The directory holding `initdb` and `postgres`: the newest /usr/lib/postgresql/<v>/bin,
    else wherever `postgres` is on PATH; None when PostgreSQL is not installed."""
    versions = sorted(
        (d for d in Path("/usr/lib/postgresql").glob("*/bin") if d.parent.name.isdigit()),
        key=lambda d: int(d.parent.name),
        reverse=True,
    )
    on_path = shutil.which("postgres")
    candidates = [*versions, *([Path(on_path).resolve().parent] if on_path else [])]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    return None


class PostgresServer:
    """One PostgreSQL cluster in `base_dir` (a new temporary directory when None), served on
    127.0.0.1:`port` (a free port when None). `settings` override the postgresql.conf settings
    this class writes. `start()` runs initdb the first time; `stop()`, `restart()` and `kill()`
    keep the data directory and the port, so clients reconnect to the same URL afterwards.
    `close()` stops the server and removes the directory."""

    def __init__(
        self,
        bin_dir: Path,
        base_dir: Path | None = None,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.bin_dir = bin_dir
        self._owns_base_dir = base_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix="csbot-pg-")) if base_dir is None else base_dir
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "postgres.log"
        # a port the caller chose, or one clients already know, never changes
        self._port_fixed = port is not None
        self.port = port if port is not None else free_port()
        self.settings = dict(settings or {})
        self._proc: subprocess.Popen | None = None
        self._run_as = _system_user() if os.geteuid() == 0 else None
        if self._run_as is not None:
            os.chown(self.base_dir, self._run_as.pw_uid, self._run_as.pw_gid)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the postmaster this object started is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (initdb first, if the cluster does not exist yet) and wait until it
        accepts connections. Raises `PostgresServerError` with the log's end when it does not."""
        if self.running:
            return
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        for attempt in range(3):
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                self._start_postmaster()
                self._port_fixed = True
                return
            except PostgresServerError:
                # the free port was taken between choosing it and binding it: before any client
                # knows the port, another one does as well
                with self.log_path.open("rb") as log:
                    log.seek(log_start)
                    port_taken = b"could not bind" in log.read()
                if self._port_fixed or not port_taken or attempt == 2:
                    raise
                self.port = free_port()
                self._write_config()

    def stop(self, mode: str = "fast") -> None:
        """Shut the server down and wait until it has: "smart" waits for the clients to
        disconnect, "fast" (the default) disconnects them, "immediate" quits without a
        checkpoint (recovery runs at the next start). SIGKILL after STOP_TIMEOUT_S."""
        if mode not in STOP_SIGNALS:
            raise PostgresServerError(f"unknown stop mode {mode!r}: use one of {', '.join(STOP_SIGNALS)}")
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(STOP_SIGNALS[mode])
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise PostgresServerError(
                f"PostgreSQL did not stop ({mode}) within {STOP_TIMEOUT_S:g} s and was killed:\n"
                f"{log_tail(self.log_path)}"
            ) from None
        self._reap_backends()

    def restart(self, mode: str = "fast") -> None:
        """Stop, then start again on the same port and data directory: the clients' open
        connections break and new ones to the same URL work once this returns."""
        self.stop(mode)
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend it forked (its process group) at once: a
        crash, every open connection breaks on its next use. `start()` afterwards runs crash
        recovery; see the module docstring on what synchronous_commit=off loses here."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)
        self._reap_backends()

    def close(self) -> None:
        """Stop the server and remove its directory (when this object made it)."""
        try:
            self.stop()
        finally:
            if self._owns_base_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- databases ---------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """The libpq URL of database `dbname` on this server (trust auth: no password)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """Create a new, empty, uniquely named database; returns its URL."""
        name = f"csbot_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, url_or_name: str) -> None:
        """Drop a database (by URL or name), disconnecting whoever is still connected to it."""
        name = url_or_name.rsplit("/", 1)[-1]
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    # -- internals ---------------------------------------------------------------------------

    def _initdb(self) -> None:
        cmd = [
            str(self.bin_dir / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # a throwaway cluster: nothing needs to reach the disk
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **self._as_server_user())
        if proc.returncode != 0:
            raise PostgresServerError(
                f"initdb exited {proc.returncode} (run as {self._user_name()}):\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            )
        self._write_config()

    def _write_config(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": _quoted(str(self.base_dir)),
            "max_connections": str(MAX_CONNECTIONS),
            **SPEED_OVER_DURABILITY,
            **self.settings,
        }
        lines = [f"{key} = {value}" for key, value in settings.items()]
        # postgresql.auto.conf is read after postgresql.conf, so these win over initdb's defaults
        (self.data_dir / "postgresql.auto.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _start_postmaster(self) -> None:
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so kill() reaches every backend
                **self._as_server_user(),
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                raise PostgresServerError(
                    f"PostgreSQL exited with {self._proc.returncode} while starting on 127.0.0.1:{self.port}:\n"
                    f"{log_tail(self.log_path)}"
                )
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise PostgresServerError(
                        f"PostgreSQL did not accept connections within {START_TIMEOUT_S:g} s:\n"
                        f"{log_tail(self.log_path)}"
                    ) from None
                time.sleep(0.1)

    def _reap_backends(self, timeout: float = 5.0) -> None:
        """Wait (briefly) until no process of the old server's group is left: a backend still
        attached to the old shared memory makes the next start refuse."""
        proc = self._proc
        if proc is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _group_has_live_process(proc.pid):
            time.sleep(0.05)

    def _as_server_user(self) -> dict:
        """Popen arguments that run a child as the `postgres` system user when we are root."""
        if self._run_as is None:
            return {"cwd": self.base_dir}
        return {
            "cwd": self.base_dir,
            "user": self._run_as.pw_uid,
            "group": self._run_as.pw_gid,
            "extra_groups": [],
            "env": {**os.environ, "HOME": self._run_as.pw_dir, "USER": SYSTEM_USER, "LOGNAME": SYSTEM_USER},
        }

    def _user_name(self) -> str:
        return self._run_as.pw_name if self._run_as is not None else pwd.getpwuid(os.geteuid()).pw_name


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresServerError(
            f"running as root, and there is no {SYSTEM_USER!r} system user to run PostgreSQL as (it refuses "
            "root): install the Debian package (apt-get install postgresql), which creates it, or run as non-root"
        ) from None


def _group_has_live_process(pgid: int) -> bool:
    """Whether a process of group `pgid` is still running (zombies, already detached from the
    shared memory, do not count: nobody may reap them when PID 1 is not an init)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # fields after "(comm)": state, ppid, pgrp, ...
        match = re.search(r"\) (\S) \d+ (\d+) ", text)
        if match and int(match.group(2)) == pgid and match.group(1) != "Z":
            return True
    return False


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the test session, stopped and its directory removed at
    the end. Without the binaries: skipped, or failed under CI=true."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        reason = (
            "PostgreSQL's initdb/postgres are absent (apt-get install postgresql): "
            "the PostgreSQL store cannot be tested"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must install it (.ci/run)")
        pytest.skip(reason)
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh empty database on the session's server, dropped after the test. A
    server an earlier test stopped or killed is started again first."""
    if not postgres_server.running:
        postgres_server.start()
    url = postgres_server.create_database()
    yield url
    with contextlib.suppress(psycopg.Error, PostgresServerError):
        postgres_server.drop_database(url)
