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
  (SET NX PX with a token, released by a script that checks the token), leased for the
  turn deadline. Redis unreachable: the turn is refused (`LockUnavailableError`, 503 with
  Retry-After) rather than run unordered; it works again as soon as Redis is back.

Every `hold` waits at most `timeout` seconds for the lock, then raises
`ConversationBusyError` (503 with Retry-After): the turn never ran, nothing is stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from bot.server.errors import ConversationBusyError, LockUnavailableError

if TYPE_CHECKING:
    import redis

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


class RedisConversationLock:
    """redis-py's `Lock` per conversation (key `csbot:lock:conversation:<id>`), leased for
    `lease_seconds`: a replica killed mid-turn holds it at most that long. The lease is the
    turn deadline, and a waiting turn waits up to its own deadline, so a retry sent after
    a crash gets through once the dead holder's lease runs out.

    A turn that outlives its lease is still stored (its release then finds the lock
    gone, and says so in the log); keep turns well inside CSBOT_TURN_DEADLINE_SECONDS."""

    def __init__(self, client: redis.Redis, lease_seconds: float, poll_seconds: float = 0.02):
        self.client, self.lease_seconds, self.poll_seconds = client, lease_seconds, poll_seconds

    @contextlib.contextmanager
    def hold(self, conversation_id: str, timeout: float) -> Iterator[None]:
        from redis.exceptions import LockError, RedisError

        lock = self.client.lock(
            REDIS_LOCK_PREFIX + conversation_id,
            timeout=self.lease_seconds,
            sleep=self.poll_seconds,
            blocking_timeout=timeout,
            # released on the thread that took it, but the token is kept on the object,
            # not in a thread-local, so any thread could
            thread_local=False,
        )
        try:
            acquired = lock.acquire()
        except RedisError as e:
            log.warning("conversation lock: Redis is unreachable, turn refused (%s: %s)", type(e).__name__, e)
            raise LockUnavailableError(type(e).__name__) from None
        if not acquired:
            raise ConversationBusyError(timeout)
        try:
            yield
        finally:
            try:
                lock.release()
            except LockError:
                log.warning(
                    "a turn of conversation %s outlived its lock's lease (%g s); it was stored, but another "
                    "replica may have taken a turn meanwhile",
                    conversation_id,
                    self.lease_seconds,
                )
            except RedisError as e:  # the turn is stored; the lease frees the lock
                log.warning("conversation lock not released, Redis is unreachable (%s); its lease ends it", e)

    def close(self) -> None:
        pass  # the client is shared (the rate limits use it too): its maker closes it


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


def make_conversation_lock(
    kind: str, *, workspace: Path, client: redis.Redis | None, lease_seconds: float
) -> ConversationLock:
    """The lock `kind` names ("process", "file", "redis"), "auto" already resolved
    (`ServerConfig.lock_kind`)."""
    if kind == "redis":
        if client is None:
            raise ValueError("a redis conversation lock needs a Redis client (CSBOT_REDIS_URL)")
        return RedisConversationLock(client, lease_seconds)
    if kind == "file":
        return FileConversationLock(workspace / "locks")
    if kind == "process":
        return ProcessConversationLock()
    raise ValueError(f"unknown conversation lock {kind!r}; use process, file or redis")
