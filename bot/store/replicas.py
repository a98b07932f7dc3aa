"""Replicas of one workspace agree on their settings, or the newcomer is refused at start.

Several `csbot serve` processes may share one workspace (its models, FAISS index and
`store.db`) behind a load balancer; a customer's turns then land on any of them. Settings
that change what a turn computes, or how the replicas coordinate, must therefore be the
same in all of them: a replica with another conversation lock would stop serialising a
conversation's turns against the others, one with another embedder or index settings
would answer the same message differently. Each replica records the settings that must
agree (`replica_settings`) in the store's `replicas` table when it starts
(`register_replica`, refused with `ReplicaSettingsConflictError` naming every difference),
keeps its row fresh while it serves (`ReplicaHeartbeat`), and removes it on a clean
shutdown (`unregister_replica`). A row whose heartbeat is older than `live_seconds` is a
replica that died without saying so: it is ignored, and deleted by the next registration.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from bot.store.connection import open_sqlite
from bot.store.database import PostgresDatabase, SqlDatabase, SqliteDatabase, is_database_url
from bot.store.errors import ReplicaSettingsConflictError, SqliteOnSeveralMachinesError, StoreError

if TYPE_CHECKING:
    from bot.settings import CsbotSettings

log = logging.getLogger("csbot.server")

TABLE = "replicas"
# the replica setting that keeps a SQLite store's replicas on one machine
SQLITE_MACHINE_KEY = "sqlite.machine"
# how long registering waits for another process's write lock (another replica starting)
REGISTER_LOCK_WAIT_S = 30.0
# index settings that size the work, not the answer: each replica may pick its own
_PER_REPLICA_INDEX_FIELDS = frozenset({"faiss_threads"})


@dataclass(frozen=True)
class ReplicaRow:
    """A registered replica, as its row reads back."""

    id: str
    host: str
    pid: int
    started_at: str
    heartbeat_at: str
    settings: dict[str, str]

    @property
    def where(self) -> str:
        """How an operator finds it: "replica <id> (pid <pid> on <host>)"."""
        return f"replica {self.id} (pid {self.pid} on {self.host})"


def replica_settings(settings: CsbotSettings) -> dict[str, str]:
    """The settings that must agree across the replicas of one workspace, as flat dotted
    keys to strings (JSON text for anything that is not a string already). Cheap: no
    model is loaded (the embedder's files are hashed, ~0.1 s for MiniLM, no torch).

    In, and why:
    - `embedder.fingerprint` and `embedder.backend`: the model (by content, wherever its
      copy lies) and the vectors it computes, named by the backend: "onnx-int8" computes
      other vectors than "torch", so the same question would retrieve differently on two
      replicas; "onnx" and "auto" compute torch's, so they are recorded as "torch" and
      replicas that run the model differently but agree on its vectors work together.
    - `workspace.embedder_id`: the model the workspace was built with (workspace.json),
      so a replica started after a rebuild with another embedder is told, not mixed in.
    - `index.*` (but `faiss_threads`): the index kind, its ANN parameters, deduplication
      and chunking change which hits a turn gets.
    - `dialogue.*`: the dialogue policy (thresholds, history, hand-off after failures);
      a conversation that moves between replicas must be led by one policy.
    - `classifier.overrides`: the intent classifier's settings: the intent of a message.
    - `server.conversation_lock` (auto resolved): replicas that lock a conversation in
      different ways (process, file, redis) no longer keep its turns in order.
    - `server.redis` and `server.redis_url_sha256`: whether rate limits and locks are
      shared through Redis, and which Redis (the URL with its password removed, hashed:
      never the secret, nor a URL an operator would not want in a database).
    - `sqlite.machine` (SQLite stores only): the machine the replica runs on
      (`machine_id`), because SQLite serves the processes of one machine only; a replica
      on another machine is refused with `SqliteOnSeveralMachinesError`. PostgreSQL
      stores have no such key: their replicas may run anywhere.

    Out: the store's schema, which the migrations guard on their own (a replica refuses a
    store that a newer csbot migrated, `refuse_newer_schema`), so that a rolling upgrade to
    a release with a new migration is not stalled by the replicas it replaces. Also out,
    as this replica's own business: where it listens (host, port), how much of the machine
    it uses (inference workers, torch and FAISS threads, batching), its log level, limits
    that each process enforces on its own clients, and secrets."""
    from bot.workspace import read_manifest
    from retrieval.embedder import default_model_path, model_fingerprint

    embedder_path = Path(settings.embedder.model_path) if settings.embedder.model_path else default_model_path()
    redis_url = settings.server.redis_url
    values: dict[str, object] = {
        "embedder.fingerprint": model_fingerprint(embedder_path),
        "embedder.backend": "onnx-int8" if settings.embedder.backend == "onnx-int8" else "torch",
        "workspace.embedder_id": read_manifest(Path(settings.workspace)).get("embedder_id"),
        "classifier.overrides": settings.classifier.overrides,
        "server.conversation_lock": settings.conversation_lock_kind,
        "server.redis": redis_url is not None,
        "server.redis_url_sha256": _url_digest(redis_url.get_secret_value()) if redis_url is not None else None,
    }
    if not is_database_url(settings.store_target):
        values[SQLITE_MACHINE_KEY] = machine_id()
    for f in fields(settings.index):
        if f.name not in _PER_REPLICA_INDEX_FIELDS:
            values[f"index.{f.name}"] = getattr(settings.index, f.name)
    for name, value in asdict(settings.dialogue).items():
        values[f"dialogue.{name}"] = value
    return {key: _as_text(value) for key, value in sorted(values.items())}


def register_replica(
    db: SqlDatabase,
    replica_id: str,
    settings_map: Mapping[str, str],
    *,
    live_seconds: float,
    host: str | None = None,
    pid: int | None = None,
    lock_wait_s: float = REGISTER_LOCK_WAIT_S,
) -> None:
    """Record this replica in the store, or raise `ReplicaSettingsConflictError` when a
    live replica (heartbeat within `live_seconds`) runs with other settings.

    The read and the write are one write transaction: of two replicas starting
    at once with conflicting settings, the second waits for the first's write lock, then
    sees its row and is refused; they cannot both register. Rows of dead replicas
    (heartbeat older than `live_seconds`) are deleted on the way."""
    now = _now()
    cutoff = _iso(now - timedelta(seconds=live_seconds))
    fix = "another process writes it for long: start the replica again once it is done"
    with db.write_transaction(wait_s=lock_wait_s, fix=fix):
        db.execute(f"delete from {TABLE} where heartbeat_at < ?", [cutoff])
        others = [row for row in _rows(db) if row.id != replica_id]
        for other in others:
            differences = settings_differences(dict(settings_map), other.settings)
            if SQLITE_MACHINE_KEY in differences:
                raise SqliteOnSeveralMachinesError(other.where, differences)
            if differences:
                raise ReplicaSettingsConflictError(other.where, differences)
        db.execute(
            f"insert into {TABLE} (id, host, pid, started_at, heartbeat_at, settings) values (?, ?, ?, ?, ?, ?) "
            "on conflict (id) do update set host = excluded.host, pid = excluded.pid, "
            "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, settings = excluded.settings",
            [
                replica_id,
                host if host is not None else socket.gethostname(),
                pid if pid is not None else os.getpid(),
                _iso(now),
                _iso(now),
                json.dumps(dict(settings_map), sort_keys=True),
            ],
        )


def heartbeat(db: SqlDatabase, replica_id: str) -> bool:
    """Say that the replica still runs; False when its row is gone (it was silent longer
    than the others' `live_seconds`, and a registration deleted it as dead)."""
    cursor = db.execute(f"update {TABLE} set heartbeat_at = ? where id = ?", [_iso(_now()), replica_id])
    db.commit()
    return cursor.rowcount > 0


def unregister_replica(db: SqlDatabase, replica_id: str) -> None:
    """Remove the replica's row (a clean shutdown): the others may then change settings."""
    db.execute(f"delete from {TABLE} where id = ?", [replica_id])
    db.commit()


def live_replicas(db: SqlDatabase, live_seconds: float) -> list[ReplicaRow]:
    """The replicas whose heartbeat is within `live_seconds` (reads only)."""
    cutoff = _iso(_now() - timedelta(seconds=live_seconds))
    return [row for row in _rows(db) if row.heartbeat_at >= cutoff]


def machine_id() -> str:
    """The machine this process runs on, as SQLite's locking sees it: the running kernel's
    boot id, which every process and container of one machine share (containers have
    hostnames of their own but the host's kernel) and which differs between machines.
    Off Linux, the hostname."""
    try:
        return "boot:" + Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return "host:" + socket.gethostname()


def settings_differences(mine: Mapping[str, str], theirs: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Key -> (mine, theirs) for every key whose values differ; a key only one side has
    (a replica of another release) shows as "(not recorded)" on the other."""
    missing = "(not recorded)"
    return {
        key: (mine.get(key, missing), theirs.get(key, missing))
        for key in sorted(set(mine) | set(theirs))
        if mine.get(key) != theirs.get(key)
    }


def new_replica_id() -> str:
    """host:pid plus a random suffix: unique even when a pid is reused on another start."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


class ReplicaHeartbeat:
    """A daemon thread that refreshes the replica's row every `live_seconds / 3` while the
    server runs, and removes the row when stopped (`with` block: a clean shutdown).

    A thread of its own rather than a task on the server's event loop: it beats while the
    models load (which can take longer than `live_seconds` on a busy machine, and the
    replica is alive meanwhile). Each beat opens its own short connection to the store.
    A row found gone (this replica was silent too long) is registered again; a conflict
    then is logged, not raised: the replica already serves."""

    def __init__(self, store_path: Path | str, replica_id: str, settings_map: Mapping[str, str], live_seconds: float):
        self.store_path, self.replica_id = store_path, replica_id
        self.settings_map, self.live_seconds = dict(settings_map), live_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="csbot-replica-heartbeat", daemon=True)

    def __enter__(self) -> ReplicaHeartbeat:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Beat every `live_seconds / 3` from now on."""
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and remove the replica's row (blocks for a moment: call it off the
        event loop)."""
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            with _connection(self.store_path) as db:
                unregister_replica(db, self.replica_id)
        except StoreError:
            log.warning("replica %s: could not remove its row; it expires by itself", self.replica_id)

    def _run(self) -> None:
        # the first beat at once: loading the server after registering may have taken a while
        while not self._stop.is_set():
            try:
                with _connection(self.store_path) as db:
                    if not heartbeat(db, self.replica_id):
                        register_replica(db, self.replica_id, self.settings_map, live_seconds=self.live_seconds)
            except ReplicaSettingsConflictError as e:
                log.error("replica %s: %s", self.replica_id, e)
            except StoreError as e:  # a busy or restarting store: expected now and then
                log.warning("replica %s: the heartbeat failed (%s); it is tried again", self.replica_id, e)
            self._stop.wait(self.live_seconds / 3)


@contextmanager
def _connection(target: Path | str) -> Iterator[SqlDatabase]:
    """A short plain connection to the existing store (no migration: the replica's start
    already opened and migrated it)."""
    if is_database_url(target):
        db: SqlDatabase = PostgresDatabase(str(target)).connect()
    else:
        db = SqliteDatabase(open_sqlite(Path(target)), str(target))
    try:
        yield db
    finally:
        db.close()


def _rows(db: SqlDatabase) -> Iterator[ReplicaRow]:
    rows = db.execute(f"select id, host, pid, started_at, heartbeat_at, settings from {TABLE} order by id").fetchall()
    for row in rows:
        replica_id, host, pid, started_at, heartbeat_at, settings = row
        yield ReplicaRow(str(replica_id), str(host), int(pid), str(started_at), str(heartbeat_at), json.loads(settings))


def _url_digest(url: str) -> str:
    """SHA-256 (first 16 hex digits) of the URL without its password: replicas on one Redis
    match, and the row holds nothing that opens it."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = "&".join(p for p in parts.query.split("&") if p and not p.lower().startswith("password="))
    cleaned = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    return hashlib.sha256(cleaned.encode()).hexdigest()[:16]


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    # fixed width (microseconds always written), so that text order is time order
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
