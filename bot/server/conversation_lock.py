"""A conversation's lock, held for the whole of one of its turns, so that its turns run
one at a time whichever replica each message reaches.

Why: a turn reads the conversation's dialogue state and its client_message_id record,
composes, then writes the turn. Inside one process the inference pool already runs a
conversation's turns in order (one worker per conversation). Two replicas behind a load
balancer could run two turns of one conversation at once: both would read the same state
(the second reply would not see the first), and a retried message could miss the copy
that the other replica is still answering. The store's unique index stops a doubled
turn, but not the lost update; this lock stops both. A turn is a function marked with
`conversation_turn`: the pool (`bot.server.inference.InferencePool`) holds the lock of
the conversation around it, on the worker's thread, after its place in the queue came.

The implementations, chosen by CSBOT_CONVERSATION_LOCK:
- `ProcessConversationLock` ("process", the default without Redis): nothing beyond the
  pool's own ordering; right for one replica.
- `FileConversationLock` ("file"): an flock on one of 64 lock files under the shared
  workspace; for replicas on one host that share a workspace and have no Redis.
- `RedisConversationLock` ("redis", the default with CSBOT_REDIS_URL): redis-py's lock
  (SET NX PX with a token, released by a script that checks the token), leased for
  `lease_seconds` and renewed every third of that by one daemon thread per process
  (`LeaseRenewer`) while the turn runs, so a slow turn keeps its conversation and a killed
  replica's lock still frees within one lease. Redis unreachable: the turn is refused
  (`LockUnavailableError`, 503 with Retry-After) rather than run unordered; it works again
  as soon as Redis is back. Should a renewal find the lock lost (its lease ran out while
  Redis was unreachable, or Redis restarted empty) the turn goes on, with one warning: its
  store write cannot double a turn (see `RedisConversationLock`), only order is lost.
- `PostgresConversationLock` ("postgres", the default with CSBOT_DATABASE_URL and no
  Redis): a session-level advisory lock on the store's own PostgreSQL, one connection per
  worker thread. PostgreSQL drops it when the holder's connection ends, so a killed
  replica frees its conversations at once; PostgreSQL unreachable: `LockUnavailableError`.

Every `hold` waits at most `timeout` seconds for the lock, then raises
`ConversationBusyError` (503 with Retry-After): the turn never ran, nothing is stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from bot.server.errors import ConversationBusyError, LockUnavailableError

if TYPE_CHECKING:
    import redis
    import redis.lock

log = logging.getLogger("csbot.server")

F = TypeVar("F", bound=Callable[..., Any])
_TURN_MARK = "__csbot_conversation_turn__"
REDIS_LOCK_PREFIX = "csbot:lock:conversation:"
FILE_LOCK_STRIPES = 64


def conversation_turn(fn: F) -> F:
    """Mark `fn(resource, conversation_id, ...)` as a turn of the conversation it is called
    for: the inference pool holds that conversation's lock while it runs."""
    setattr(fn, _TURN_MARK, True)
    return fn


def is_conversation_turn(fn: Callable[..., Any]) -> bool:
    return bool(getattr(fn, _TURN_MARK, False))


class ConversationLock(Protocol):
    """Mutual exclusion per conversation, across whatever processes share the lock."""

    def hold(self, conversation_id: str, timeout: float) -> AbstractContextManager[None]:
        """Hold the conversation's lock for the block; wait `timeout` seconds at most for
        it (`ConversationBusyError`). `LockUnavailableError` when the lock cannot be
        taken at all (its store is down)."""
        ...

    def close(self) -> None:
        """Free what the lock holds open (connections); called once, at shutdown."""
        ...


class ProcessConversationLock:
    """No lock beyond this process: its inference pool already runs a conversation's
    turns one at a time, on the one worker that owns the conversation."""

    @contextlib.contextmanager
    def hold(self, conversation_id: str, timeout: float) -> Iterator[None]:
        yield

    def close(self) -> None:
        pass


class FileConversationLock:
    """flock on one of `stripes` files under `directory` (a conversation always maps to
    the same one, by crc32 of its id), for processes on one host sharing a workspace.

    Striped rather than a file per conversation: the files are made once and never pile
    up; two conversations that share a stripe only wait for each other's turn. flock
    belongs to an open file, so every hold opens its own: two threads of one process
    exclude each other as two processes do. The kernel drops the lock when its holder
    dies, so a killed replica never leaves a conversation locked. Not for NFS."""

    def __init__(self, directory: Path, stripes: int = FILE_LOCK_STRIPES, poll_seconds: float = 0.005):
        if stripes < 1:
            raise ValueError(f"stripes must be at least 1, got {stripes}")
        self.directory, self.stripes, self.poll_seconds = directory, stripes, poll_seconds
        directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, conversation_id: str) -> Path:
        stripe = zlib.crc32(conversation_id.encode("utf-8")) % self.stripes
        return self.directory / f"conversation-{stripe:03d}.lock"

    @contextlib.contextmanager
    def hold(self, conversation_id: str, timeout: float) -> Iterator[None]:
        fd = os.open(self.path_for(conversation_id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._acquire(fd, timeout)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _acquire(self, fd: int, timeout: float) -> None:
        """Try without blocking, then poll (flock has no timeout of its own), backing off
        to 50 ms between tries."""
        deadline = time.monotonic() + timeout
        pause = self.poll_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConversationBusyError(timeout) from None
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(pause * 2, 0.05)

    def close(self) -> None:
        pass


@dataclass(eq=False)
class HeldLease:
    """One turn's hold of a Redis lock, as the renewer sees it. `mutex` keeps a renewal
    and the release apart, so that a renewal never runs on a lock already released (it
    would find the key gone and report a loss that did not happen)."""

    conversation_id: str
    lock: redis.lock.Lock
    mutex: threading.Lock = field(default_factory=threading.Lock)
    released: bool = False
    lost: bool = False  # no longer ours: not renewed again
    reported: bool = False  # the one warning of this turn about its lease was logged


class LeaseRenewer:
    """One daemon thread that renews the lease of every lock its `RedisConversationLock`
    holds, every `interval_seconds`, until `close`. A server makes one conversation lock
    (`bot.server.runtime`), so this is one thread per process.

    One thread for all the turns rather than one per turn: a renewal is one short script
    call, and the threads a replica starts stay fixed however many turns it runs. It is a
    daemon so it dies with its process: a killed replica stops renewing, and its locks
    free when their lease runs out. It starts on the first hold, and again after a fork
    (threads do not survive one); it sleeps while nothing is held."""

    def __init__(self, lease_seconds: float, interval_seconds: float):
        self.lease_seconds, self.interval_seconds = lease_seconds, interval_seconds
        self.thread: threading.Thread | None = None
        self._held: set[HeldLease] = set()
        self._wake = threading.Condition()
        self._closed = False
        self._pid = os.getpid()

    def track(self, conversation_id: str, lock: redis.lock.Lock) -> HeldLease:
        """Renew `lock` (just acquired) from now until `untrack`."""
        lease = HeldLease(conversation_id, lock)
        with self._wake:
            if self._closed:
                raise RuntimeError("the conversation lock is closed: make a new one")
            if self._pid != os.getpid():  # a forked child: the parent's holds are not its own
                self._held, self.thread, self._pid = set(), None, os.getpid()
            self._held.add(lease)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="csbot-lock-renewer", daemon=True)
                self.thread.start()
            elif len(self._held) == 1:  # the thread sleeps while nothing is held: wake it
                self._wake.notify_all()
        return lease

    def untrack(self, lease: HeldLease) -> None:
        """Stop renewing `lease`; returns once no renewal of it is in flight."""
        with lease.mutex:
            lease.released = True
        with self._wake:
            self._held.discard(lease)

    def close(self) -> None:
        """Stop the thread and wait for it (at most one renewal's socket timeout)."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(10)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._held and not self._closed:
                    self._wake.wait()
                if not self._closed:  # a lock taken just now has a whole lease: renew after a pause
                    self._wake.wait(self.interval_seconds)
                if self._closed:
                    return
                held = list(self._held)
            self.renew(held)

    def renew(self, held: list[HeldLease]) -> None:
        """Give each lease a whole `lease_seconds` again. Once Redis fails to answer one,
        the rest of this round are not tried (they would each wait out the same socket
        timeout) but reported alike; the next round tries them all again."""
        from redis.exceptions import LockError, RedisError

        unreachable: RedisError | None = None
        for lease in held:
            with lease.mutex:
                if lease.released or lease.lost:
                    continue
                if unreachable is None:
                    try:
                        lease.lock.extend(self.lease_seconds, replace_ttl=True)
                        continue
                    except LockError:  # LockNotOwnedError: the key is gone or holds another token
                        lease.lost = True
                        self.report(lease, "its lock was lost (the lease ran out or Redis lost the key)")
                        continue
                    except RedisError as e:
                        unreachable = e
                self.report(lease, f"its lock's lease could not be renewed, Redis is unreachable ({unreachable})")

    def report(self, lease: HeldLease, why: str) -> None:
        """The one warning of a turn about its lease: the conversation id, never its text."""
        if lease.reported:
            return
        lease.reported = True
        log.warning(
            "a turn of conversation %s goes on without exclusivity: %s; another replica may take a turn of "
            "it meanwhile (this turn is still stored once)",
            lease.conversation_id,
            why,
        )


class RedisConversationLock:
    """redis-py's `Lock` per conversation (key `csbot:lock:conversation:<id>`), leased for
    `lease_seconds` and renewed every `lease_seconds / 3` while the turn runs, by this
    object's one `LeaseRenewer` thread: a turn keeps its conversation however long it runs,
    and a replica killed mid-turn holds it at most one lease longer. A waiting turn waits up
    to its own deadline, so a retry sent after a crash gets through once the dead holder's
    lease runs out.

    A turn whose lock is lost anyway (a renewal found another token or no key, after Redis
    was unreachable for a whole lease or restarted empty) is not stopped: it is logged once
    and goes on. Its store write cannot double a turn: `bot.server.turns.take_turn` first
    returns the stored reply of its client_message_id, and the store writes the customer
    message and the reply in one transaction under unique indexes on (conversation,
    client_message_id) and (conversation, turn), so a copy of the same message that another
    replica answers meanwhile ends in `DuplicateClientMessageError` and the stored reply
    (`bot.store.conversations.ConversationStore.record_turn`). What is lost is order: a turn
    of another message running alongside composes from the dialogue state before this one's
    write. A crash would lose the turn outright, so going on is the better degradation."""

    def __init__(self, client: redis.Redis, lease_seconds: float, poll_seconds: float = 0.02):
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        self.client, self.lease_seconds, self.poll_seconds = client, lease_seconds, poll_seconds
        self.renewer = LeaseRenewer(lease_seconds, interval_seconds=lease_seconds / 3)

    @contextlib.contextmanager
    def hold(self, conversation_id: str, timeout: float) -> Iterator[None]:
        from redis.exceptions import LockError, RedisError

        lock = self.client.lock(
            REDIS_LOCK_PREFIX + conversation_id,
            timeout=self.lease_seconds,
            sleep=self.poll_seconds,
            blocking_timeout=timeout,
            # taken on the turn's thread, renewed on the renewer's: the token is kept on
            # the object, not in a thread-local, so that both see it
            thread_local=False,
        )
        try:
            acquired = lock.acquire()
        except RedisError as e:
            log.warning("conversation lock: Redis is unreachable, turn refused (%s: %s)", type(e).__name__, e)
            raise LockUnavailableError(type(e).__name__) from None
        if not acquired:
            raise ConversationBusyError(timeout)
        lease = self.renewer.track(conversation_id, lock)
        try:
            yield
        finally:
            self.renewer.untrack(lease)
            try:
                lock.release()
            except LockError:
                self.renewer.report(lease, "its lock was lost before the turn ended")
            except RedisError as e:  # the turn is stored; the lease frees the lock
                self.renewer.report(lease, f"its lock was not released, Redis is unreachable ({e}); its lease ends it")

    def close(self) -> None:
        """Stop the renewer. The client is shared (the rate limits use it too): its maker
        closes it."""
        self.renewer.close()


def redis_client(url: str, timeout_seconds: float = 0.5) -> redis.Redis:
    """A client for the shared Redis that fails fast: short socket timeouts and no retries
    of its own, because every caller has its own answer to Redis being down (the rate
    limits fall back to this process's, a locked turn is refused with 503). It connects
    on first use, so a Redis that is down at start does not stop the server."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


class PostgresConversationLock:
    """`pg_advisory_lock` per conversation on the store's PostgreSQL, held by the turn's
    thread's own connection for the whole turn (session-level: it outlives the store's
    short transactions, and ends with the connection, so a replica killed mid-turn frees it
    at once). The wait is bounded by `lock_timeout` (the turn's own deadline), past it
    `ConversationBusyError`. Conversations map to 2^32 keys in a keyspace of csbot's own
    (two-int form, class `ADVISORY_CLASS`); two that share a key only wait for each other.
    A connection PostgreSQL dropped (a restart) is made again on the next turn; while it is
    unreachable turns are refused (`LockUnavailableError`), never run unordered."""

    ADVISORY_CLASS = 0x63736274  # "csbt": never the store's write lock, which uses the one-bigint form

    def __init__(self, url: str, connect_timeout_s: int = 5):
        self.url, self.connect_timeout_s = url, connect_timeout_s
        self._local = threading.local()
        self._opened: list[Any] = []
        self._guard = threading.Lock()

    @staticmethod
    def key_for(conversation_id: str) -> int:
        return zlib.crc32(conversation_id.encode("utf-8")) - 2**31  # an int4

    def _connection(self) -> Any:
        import psycopg

        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout_s)
            self._local.conn = conn
            with self._guard:
                self._opened.append(conn)
        return conn

    @contextlib.contextmanager
    def hold(self, conversation_id: str, timeout: float) -> Iterator[None]:
        import psycopg

        key = [self.ADVISORY_CLASS, self.key_for(conversation_id)]
        try:
            conn = self._connection()
            conn.execute(f"set lock_timeout = {max(1, int(timeout * 1000))}")
            conn.execute("select pg_advisory_lock(%s, %s)", key)
        except psycopg.errors.LockNotAvailable:
            raise ConversationBusyError(timeout) from None
        except psycopg.Error as e:
            log.warning("conversation lock: PostgreSQL is unreachable, turn refused (%s: %s)", type(e).__name__, e)
            raise LockUnavailableError(type(e).__name__) from None
        try:
            yield
        finally:
            try:
                conn.execute("select pg_advisory_unlock(%s, %s)", key)
            except psycopg.Error as e:  # the session ended (a restart): the lock ended with it
                log.warning("conversation lock: not released, its connection is gone (%s)", type(e).__name__)

    def close(self) -> None:
        with self._guard:
            opened, self._opened = self._opened, []
        for conn in opened:
            with contextlib.suppress(Exception):
                conn.close()


def make_conversation_lock(
    kind: str,
    *,
    workspace: Path,
    client: redis.Redis | None,
    lease_seconds: float,
    database_url: str | None = None,
) -> ConversationLock:
    """The lock `kind` names ("process", "file", "redis", "postgres"), "auto" already
    resolved (`CsbotSettings.conversation_lock_kind`)."""
    if kind == "postgres":
        if database_url is None:
            raise ValueError("a postgres conversation lock needs the store on PostgreSQL (CSBOT_DATABASE_URL)")
        return PostgresConversationLock(database_url)
    if kind == "redis":
        if client is None:
            raise ValueError("a redis conversation lock needs a Redis client (CSBOT_REDIS_URL)")
        return RedisConversationLock(client, lease_seconds)
    if kind == "file":
        return FileConversationLock(workspace / "locks")
    if kind == "process":
        return ProcessConversationLock()
    raise ValueError(f"unknown conversation lock {kind!r}; use process, file, redis or postgres")
