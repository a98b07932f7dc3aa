"""Inference off the event loop: worker threads that each own what they work with.

A `ThreadWorker` is one thread and one resource built *in* that thread (a loaded
`Assistant`, a store connection): SQLite connections must stay in the thread that opened
them, and a model that only one thread touches needs no locks.

An `InferencePool` has N such workers, each with its own `Assistant` (its own models and
store connection; the store is SQLite in WAL mode, so they write side by side). A
conversation always goes to the same worker (a stable hash of its id), so its turns run
in the order they arrived, while turns of other conversations run on the other workers
meanwhile. torch releases the GIL while it computes, so N workers use N cores' worth of
encoding (each gets max(1, cores // N) torch threads, see `ServerConfig.threads_per_worker`).

What waits for a worker is bounded (a `TurnQueue`): past `max_waiting` calls waiting
across the pool, a new one is refused at once (`QueueFullError`, 503 + Retry-After)
rather than queued behind minutes of work; a call that no worker started within its
deadline is dropped (`TurnDeadlineError`) and never runs, so nothing is stored for a
message whose client has long given up. A call whose caller is cancelled (its client
disconnected) before a worker takes it never runs either. A call that has started runs
to its end: a turn is stored whole or not at all. A stream whose consumer goes away
stops pulling from its iterator and closes it.

Across processes (several replicas on one store) the pool's ordering is not enough: a
call of a function marked `conversation_turn` runs under the conversation's lock
(`bot.server.conversation_lock`), taken on the worker's thread once the call's place in
the queue came and held until it returns (a stream: until its iterator is closed). It
waits for the lock until the call's deadline at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
import zlib
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from bot.server.conversation_lock import ConversationLock, ProcessConversationLock, is_conversation_turn
from bot.server.errors import QueueFullError, TurnDeadlineError

R = TypeVar("R")
T = TypeVar("T")

_ITEM, _ERROR, _END = "item", "error", "end"
_WAITING, _STARTED, _DROPPED = "waiting", "started", "dropped"
# how long a call without a deadline waits for its conversation's lock
_LOCK_WAIT_WITHOUT_DEADLINE = 30.0
# a call that starts just before its deadline still waits this long for its lock
_MIN_LOCK_WAIT = 0.5

# what a call runs inside on the worker's thread (its conversation's lock), given the
# seconds left until its deadline (None: none)
Guard = Callable[[float | None], AbstractContextManager[None]]


class Ticket:
    """One call's place in a `TurnQueue`: waiting until a worker starts it, then started;
    or dropped (its deadline passed, or its caller went away), after which it never runs.
    `begin` is called on the worker's thread, the rest on the event loop."""

    def __init__(self, queue: TurnQueue, deadline: float, loop: asyncio.AbstractEventLoop):
        self._queue, self.deadline, self._loop = queue, deadline, loop
        self.state = _WAITING
        # set (on the loop) once a worker has started the call
        self.started: asyncio.Future[None] = loop.create_future()

    def begin(self) -> bool:
        """On the worker's thread, just before the call would run: whether it may."""
        with self._queue.lock:
            if self.state == _WAITING and self._queue.clock() <= self.deadline:
                self.state = _STARTED
                self._queue.waiting.discard(self)
            else:
                self._drop()
                return False
        # a closed loop (shutdown) raises RuntimeError: nobody waits for it any more
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_resolve, self.started)
        return True

    def drop(self) -> bool:
        """Make sure the call never runs, if it has not started: whether it will not run."""
        with self._queue.lock:
            if self.state != _STARTED:
                self._drop()
            return self.state == _DROPPED

    def remaining(self) -> float | None:
        """Seconds until the deadline (None: no deadline)."""
        return None if math.isinf(self.deadline) else max(0.0, self.deadline - self._queue.clock())

    def deadline_error(self) -> TurnDeadlineError:
        """What a caller gets for a call dropped because no worker took it in time."""
        return TurnDeadlineError(self._queue.deadline_seconds or 0.0)

    def _drop(self) -> None:  # under the queue's lock
        self.state = _DROPPED
        self._queue.waiting.discard(self)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class TurnQueue:
    """The calls that wait for a worker, across a pool: at most `limit` of them (None:
    no limit), each for at most `deadline_seconds` (None: for ever)."""

    def __init__(
        self,
        limit: int | None = None,
        deadline_seconds: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit, self.deadline_seconds, self.clock = limit, deadline_seconds, clock
        self.lock = threading.Lock()
        self.waiting: set[Ticket] = set()

    def refuse_if_full(self) -> None:
        """`QueueFullError` when no place is free now, without taking one: lets a request
        that would be refused be refused before any other work is done for it. `admit`
        still enforces the bound (another call may take the last place in between)."""
        with self.lock:
            self._refuse_if_full(self.clock())

    def _refuse_if_full(self, now: float) -> None:
        # a ticket nobody took in time holds no place, even if its caller never came back for it
        for ticket in [t for t in self.waiting if t.deadline < now]:
            ticket._drop()
        if self.limit is not None and len(self.waiting) >= self.limit:
            raise QueueFullError(self.limit)

    def admit(self) -> Ticket:
        """A place for one more call (on the event loop), or `QueueFullError`."""
        loop = asyncio.get_running_loop()
        with self.lock:
            now = self.clock()
            self._refuse_if_full(now)
            deadline = math.inf if self.deadline_seconds is None else now + self.deadline_seconds
            ticket = Ticket(self, deadline, loop)
            self.waiting.add(ticket)
            return ticket


class ThreadWorker(Generic[R]):
    """One thread that builds a resource with `factory` and runs calls on it, in order."""

    def __init__(self, name: str, factory: Callable[[], R], closer: Callable[[R], None] | None = None):
        self.name = name
        self._factory, self._closer = factory, closer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._resource: R | None = None

    @property
    def started(self) -> bool:
        return self._resource is not None

    async def start(self) -> None:
        """Build the resource on the worker's thread (this is where models load)."""
        self._resource = await asyncio.get_running_loop().run_in_executor(self._executor, self._factory)

    async def call(
        self, fn: Callable[..., T], *args: Any, ticket: Ticket | None = None, guard: Guard | None = None
    ) -> T:
        """`fn(resource, *args)` on the worker's thread, after the calls queued before it.
        With a `ticket`, it runs only if the ticket is still good when its turn comes;
        with a `guard`, inside it."""
        if ticket is None and guard is None:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn, args)
        done = asyncio.wrap_future(self._executor.submit(self._run_admitted, ticket, guard, fn, args))
        if ticket is not None:
            await _until_started(ticket, done)
        return await done

    def _run_admitted(
        self, ticket: Ticket | None, guard: Guard | None, fn: Callable[..., T], args: tuple[Any, ...]
    ) -> T:
        if ticket is not None and not ticket.begin():
            raise ticket.deadline_error()  # it never runs; whoever still waits learns why
        if guard is None:
            return self._run(fn, args)
        with guard(ticket.remaining() if ticket is not None else None):
            return self._run(fn, args)

    async def stream(
        self, fn: Callable[..., Iterator[T]], *args: Any, ticket: Ticket | None = None, guard: Guard | None = None
    ) -> AsyncGenerator[T, None]:
        """Iterate `fn(resource, *args)` on the worker's thread; its items arrive here as
        they are produced (through a queue fed with `call_soon_threadsafe`). An error in
        the iterator is raised here, after the items before it. When this generator is
        closed or cancelled early, the thread stops pulling items and closes the iterator."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def put(kind: str, value: Any) -> None:
            # a closed loop (shutdown) raises RuntimeError: nobody is listening any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        def produce() -> None:
            if ticket is not None and not ticket.begin():
                put(_ERROR, ticket.deadline_error())
                return
            with contextlib.ExitStack() as held:
                try:
                    if guard is not None:  # held until the iterator is closed, below
                        held.enter_context(guard(ticket.remaining() if ticket is not None else None))
                except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
                    put(_ERROR, e)
                    return
                pull()

        def pull() -> None:
            iterator: Iterator[T] | None = None
            try:
                iterator = iter(self._run(fn, args))
                while not stop.is_set():  # the consumer left: pull nothing more
                    try:
                        item = next(iterator)
                    except StopIteration:
                        put(_END, None)
                        return
                    put(_ITEM, item)
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
                put(_ERROR, e)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception as e:  # noqa: BLE001 - a generator that will not close
                        put(_ERROR, e)

        done = asyncio.wrap_future(self._executor.submit(produce))
        try:
            if ticket is not None:
                await _until_started(ticket, done)
            while True:
                kind, value = await queue.get()
                if kind == _ITEM:
                    yield value
                elif kind == _ERROR:
                    raise value
                else:
                    await done
                    return
        finally:
            stop.set()

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._resource is None:
            raise RuntimeError(f"worker {self.name} has not started")
        return fn(self._resource, *args)

    async def close(self) -> None:
        """Finish the queued calls, close the resource on its own thread, stop the thread."""
        if self._resource is not None and self._closer is not None:
            closer, resource = self._closer, self._resource
            await asyncio.get_running_loop().run_in_executor(self._executor, closer, resource)
        self._resource = None
        self._executor.shutdown(wait=True)


async def _until_started(ticket: Ticket, done: asyncio.Future[Any]) -> None:
    """Wait until a worker starts the ticket's call (or it ends). Past the deadline, or
    when the caller is cancelled, a call not yet started is dropped: it never runs (and
    `done` is cancelled, which takes it off the worker's queue)."""
    try:
        await asyncio.wait({done, ticket.started}, timeout=ticket.remaining(), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        if ticket.drop():
            done.cancel()
        raise
    if not done.done() and not ticket.started.done() and ticket.drop():
        done.cancel()
        raise ticket.deadline_error()


class InferencePool(Generic[R]):
    """N `ThreadWorker`s; work for one conversation always lands on the same one. The
    calls waiting for any of them are bounded by one `TurnQueue`; a conversation's turns
    (functions marked `conversation_turn`) run under its `lock`."""

    def __init__(
        self,
        factory: Callable[[], R],
        workers: int,
        closer: Callable[[R], None] | None = None,
        name: str = "csbot-inference",
        queue: TurnQueue | None = None,
        lock: ConversationLock | None = None,
    ):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = [ThreadWorker(f"{name}-{i}", factory, closer) for i in range(workers)]
        self.queue = queue or TurnQueue()
        self.lock: ConversationLock = lock or ProcessConversationLock()

    def _guard(self, conversation_id: str, fn: Callable[..., Any]) -> Guard | None:
        """For a conversation's turn, its lock, waited for until the call's deadline."""
        if not is_conversation_turn(fn):
            return None

        def hold(remaining: float | None) -> AbstractContextManager[None]:
            wait = _LOCK_WAIT_WITHOUT_DEADLINE if remaining is None else max(_MIN_LOCK_WAIT, remaining)
            return self.lock.hold(conversation_id, wait)

        return hold

    def __len__(self) -> int:
        return len(self.workers)

    def worker_for(self, conversation_id: str) -> ThreadWorker[R]:
        """The worker that owns a conversation: crc32 is stable across processes and
        restarts (Python's hash() of a str is not)."""
        return self.workers[zlib.crc32(conversation_id.encode("utf-8")) % len(self.workers)]

    async def start(self) -> None:
        """Load every worker's resource, all at once."""
        await asyncio.gather(*(w.start() for w in self.workers))

    async def call(self, conversation_id: str, fn: Callable[..., T], *args: Any) -> T:
        """`fn(resource, *args)` on the conversation's worker; `QueueFullError` at once
        when the queue is full, `TurnDeadlineError` when no worker took it in time."""
        ticket = self.queue.admit()
        guard = self._guard(conversation_id, fn)
        return await self.worker_for(conversation_id).call(fn, *args, ticket=ticket, guard=guard)

    def stream(self, conversation_id: str, fn: Callable[..., Iterator[T]], *args: Any) -> AsyncGenerator[T, None]:
        """The items of `fn(resource, *args)` on the conversation's worker. The place in
        the queue is taken here, when the stream is made (`QueueFullError` is raised by
        this call, so a route can answer 503 before it opens a response); the deadline
        counts from here too."""
        ticket = self.queue.admit()
        guard = self._guard(conversation_id, fn)
        return self.worker_for(conversation_id).stream(fn, *args, ticket=ticket, guard=guard)

    async def close(self) -> None:
        await asyncio.gather(*(w.close() for w in self.workers))
