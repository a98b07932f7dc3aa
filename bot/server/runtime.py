"""What a running app holds: its settings, the inference pool (with its bounded queue), with
batching on the models its workers share (`bot.server.batching`), a store worker for reads
and small writes, the watcher that feeds live event streams, the messaging channels and
their worker, who a request's client is, the rate limiters (per client address and per
conversation), the conversation lock that orders a conversation's turns across replicas,
the Redis client they share when CSBOT_REDIS_URL is set, and whether it is ready.

One `Runtime` per app (in `app.state`), made by `create_app` and started by its
lifespan; routes reach it through the `runtime` / `ready_runtime` dependencies. Nothing
here is global, so tests can run several apps side by side.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from fastapi import Request

from bot.channels.base import Channel
from bot.channels.registry import enabled_channels
from bot.channels.worker import ChannelWorker
from bot.contracts import TurnResult
from bot.server.batching import BatchingModels
from bot.server.conversation_lock import (
    ConversationLock,
    conversation_turn,
    make_conversation_lock,
    redis_client,
)
from bot.server.errors import NotReadyError
from bot.server.inference import InferencePool, ThreadWorker, TurnQueue
from bot.server.limits import ClientAddresses, Limiter, RateLimiter, RedisRateLimiter
from bot.server.turns import take_turn, warm_up
from bot.server.watcher import EventWatcher
from bot.settings import CsbotSettings
from bot.store import ConversationStore
from bot.workspace import Assistant

if TYPE_CHECKING:
    import redis

log = logging.getLogger("csbot.server")


class Runtime:
    """The app's working parts and its readiness ("loading", "ready" or "failed")."""

    def __init__(
        self,
        settings: CsbotSettings,
        assistant_factory: Callable[[], Assistant],
        models: BatchingModels | None = None,
    ):
        self.settings = settings
        server = settings.server
        # with batching on, the models the factory's assistants share (their encodes and
        # decodes batched across workers); closed here after the workers
        self.models = models
        # shared by the replicas when set: the rate limits' buckets and the conversation
        # locks; it connects on first use, so a Redis that is down does not stop a start
        self.redis: redis.Redis | None = (
            redis_client(server.redis_url.get_secret_value()) if server.redis_url is not None else None
        )
        self.conversation_lock: ConversationLock = make_conversation_lock(
            settings.conversation_lock_kind,
            workspace=Path(settings.workspace),
            client=self.redis,
            lease_seconds=server.lock_lease_seconds,
            database_url=settings.database_url.get_secret_value() if settings.database_url is not None else None,
        )
        self.pool: InferencePool[Assistant] = InferencePool(
            assistant_factory,
            server.workers,
            closer=lambda a: a.close(),
            queue=TurnQueue(server.max_queued_turns, server.turn_deadline_seconds),
            lock=self.conversation_lock,
        )
        # Reads (history, live events) and small writes (new conversations, ratings) go to
        # their own thread and connection, so they never wait behind a slow turn.
        self._store: ThreadWorker[ConversationStore] | None = None
        self.ip_limiter = self._limiter(server.rate_limit_per_ip, "ip")
        self.session_limiter = self._limiter(server.rate_limit_per_session, "session")
        self.state = "loading"
        self.failure: str | None = None
        self.max_message_chars = 0
        self.store_path: Path | str | None = None  # the SQLite file or the PostgreSQL URL
        # set when the server starts shutting down: live event streams end at their next poll
        self.closing = threading.Event()
        self.clients = ClientAddresses(server.trusted_proxies)
        self.watcher = EventWatcher(
            server.events_poll_seconds,
            server.max_event_streams,
            server.max_event_streams_per_client,
            self.closing,
        )
        # the messaging platforms whose secrets are set; their worker starts with the store
        self.channels: dict[str, Channel] = enabled_channels(settings.channels)
        self.channel_worker: ChannelWorker | None = None
        self._http: httpx.AsyncClient | None = None
        self.clock: Callable[[], float] = time.time

    def _limiter(self, per_minute: int, scope: str) -> Limiter | None:
        """A rate limiter of `per_minute` (0: none): shared through Redis when it is set,
        with this process's own as its fallback."""
        if not per_minute:
            return None
        own = RateLimiter(per_minute, scope)
        return RedisRateLimiter(self.redis, own) if self.redis is not None else own

    @property
    def store(self) -> ThreadWorker[ConversationStore]:
        """The store worker; routes reach it through `ready_runtime`, and being ready means
        `start` made it."""
        assert self._store is not None, "Runtime.start() makes the store worker before it is ready"
        return self._store

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    async def start(self) -> None:
        """Load the assistants (the first alone, so that it applies any store migration
        before the others open the store), then the store worker. A failure is kept and
        reported by /readyz and by every API call, rather than killing the process."""
        started = time.perf_counter()
        if self.redis is not None:
            await asyncio.to_thread(self._check_redis)
        try:
            first, *others = self.pool.workers
            await first.start()
            await asyncio.gather(*(w.start() for w in others))
            await asyncio.gather(*(w.call(warm_up) for w in self.pool.workers))
            max_message_chars, path = await first.call(lambda a: (a.config.dialogue.max_message_chars, a.store.target))
            self.max_message_chars, self.store_path = max_message_chars, path
            store = self._store = ThreadWorker(
                "csbot-store", lambda: ConversationStore(path).open(), lambda s: s.close()
            )
            await store.start()
            self.watcher.start(store)
            if self.channels:
                self._http = httpx.AsyncClient()
                self.channel_worker = ChannelWorker(
                    self.channels, self.settings.channels, store, self._channel_turn, self._http, self.clock
                )
                self.channel_worker.start()
        except Exception as e:  # reported, not raised: the process stays up and says why
            self.state, self.failure = "failed", f"{type(e).__name__}: {e}"
            log.exception("csbot failed to load: %s", self.failure)
            return
        self.state = "ready"
        log.info(
            "csbot ready: %d inference worker(s)%s loaded in %.1f s",
            len(self.pool),
            " sharing batched models" if self.models is not None else "",
            time.perf_counter() - started,
        )

    def _check_redis(self) -> None:
        """Say at start, in one line, when the shared Redis does not answer: the server
        starts anyway (the limits count per process, locked turns answer 503 until it
        does)."""
        from redis.exceptions import RedisError

        assert self.redis is not None
        try:
            self.redis.ping()
        except RedisError as e:
            turns = "; turns answer 503" if self.settings.conversation_lock_kind == "redis" else ""
            log.warning(
                "CSBOT_REDIS_URL does not answer (%s: %s): rate limits count per process%s until it does",
                type(e).__name__,
                e,
                turns,
            )

    def begin_shutdown(self) -> None:
        """Called from a signal handler: only sets a flag (safe from any thread)."""
        self.closing.set()

    def require_ready(self) -> None:
        if not self.ready:
            raise NotReadyError(self.state, self.failure)

    def limit_session(self, conversation_id: str) -> None:
        """Take one message from the conversation's budget (RateLimitedError when spent)."""
        if self.session_limiter is not None:
            self.session_limiter.check(conversation_id)

    async def _channel_turn(self, platform: str, conversation_id: str, text: str, event_id: str) -> TurnResult:
        return await self.pool.call(conversation_id, channel_turn, conversation_id, text, event_id, platform)

    async def close(self) -> None:
        if self.channel_worker is not None:
            await self.channel_worker.close()
        if self._http is not None:
            await self._http.aclose()
        await self.watcher.close()
        await self.pool.close()
        if self.models is not None:  # after the workers: nothing submits to the batchers any more
            await asyncio.to_thread(self.models.close)
        if self._store is not None:
            await self._store.close()
        await asyncio.to_thread(self.conversation_lock.close)
        if self.redis is not None:
            await asyncio.to_thread(self.redis.close)


@conversation_turn
def channel_turn(assistant: Assistant, conversation_id: str, text: str, event_id: str, platform: str) -> TurnResult:
    """A messaging platform's customer message as a turn (on an inference worker): the
    platform's event id is the turn's client message id, so a message taken again after
    a restart gets its stored reply rather than a second turn."""
    assistant.store.ensure_conversation(conversation_id, channel=platform)
    return take_turn(assistant, conversation_id, text, event_id, channel=platform)


def runtime(request: Request) -> Runtime:
    """Dependency: the app's runtime, ready or not (health checks)."""
    return request.app.state.runtime


def ready_runtime(request: Request) -> Runtime:
    """Dependency: the app's runtime once loaded; 503 with Retry-After before that."""
    rt: Runtime = request.app.state.runtime
    rt.require_ready()
    return rt
