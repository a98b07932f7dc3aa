"""Inference off the event loop: worker threads that each own what they work with.

A `ThreadWorker` is one thread and one resource built *in* that thread (a loaded
`Assistant`, a store connection): SQLite connections must stay in the thread that opened
them, and a model that only one thread touches needs no locks.

An `InferencePool` has N such workers, each with its own `Assistant` (its own models and
store connection; the store is SQLite in WAL mode, so they write side by side). A
conversation always goes to the same worker (a stable hash of its id), so its turns run
in the order they arrived, while turns of other conversations run on the other workers
meanwhile. torch releases the GIL while it computes, so N workers use N cores' worth of
encoding (each gets max(1, cores // N) torch threads, see `ServerSettings`).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

R = TypeVar("R")
T = TypeVar("T")

_ITEM, _ERROR, _END = "item", "error", "end"


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

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(resource, *args)` on the worker's thread, after the calls queued before it."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn, args)

    async def stream(self, fn: Callable[..., Iterator[T]], *args: Any) -> AsyncIterator[T]:
        """Iterate `fn(resource, *args)` on the worker's thread; its items arrive here as
        they are produced (through a queue fed with `call_soon_threadsafe`). An error in
        the iterator is raised here, after the items before it."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def put(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop closed (shutdown): nobody is listening any more
                pass

        def produce() -> None:
            try:
                for item in self._run(fn, args):
                    put(_ITEM, item)
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
                put(_ERROR, e)
            else:
                put(_END, None)

        done = loop.run_in_executor(self._executor, produce)
        while True:
            kind, value = await queue.get()
            if kind == _ITEM:
                yield value
            elif kind == _ERROR:
                await done
                raise value
            else:
                await done
                return

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


class InferencePool(Generic[R]):
    """N `ThreadWorker`s; work for one conversation always lands on the same one."""

    def __init__(self, factory: Callable[[], R], workers: int,
                 closer: Callable[[R], None] | None = None, name: str = "csbot-inference"):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = [ThreadWorker(f"{name}-{i}", factory, closer) for i in range(workers)]

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
        return await self.worker_for(conversation_id).call(fn, *args)

    def stream(self, conversation_id: str, fn: Callable[..., Iterator[T]], *args: Any) -> AsyncIterator[T]:
        return self.worker_for(conversation_id).stream(fn, *args)

    async def close(self) -> None:
        await asyncio.gather(*(w.close() for w in self.workers))
