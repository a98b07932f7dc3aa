"""Request limits that protect the workers: a body-size cap (413) and token-bucket rate
limits per client IP and per conversation (429 with Retry-After).

The buckets live in this process's memory: each replica limits on its own, so behind a
load balancer with N replicas a client may get up to N times the limit. That is the
trade we take for no shared state between replicas (a Redis-backed limiter would be the
next step). Both checks run before a body is parsed or a turn queued.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.server.errors import BodyTooLargeError, RateLimitedError, error_response


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by a string (an IP, a conversation id): `per_minute` requests
    in a burst, refilled at `per_minute` a minute. Used from the event loop only.

    At most `max_keys` buckets are kept; the least recently used go first (a bucket idle
    for a minute is full again, so forgetting it changes nothing).
    """

    def __init__(self, per_minute: int, scope: str, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000):
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        self.per_minute, self.scope = per_minute, scope
        self._rate = per_minute / 60.0
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def check(self, key: str) -> None:
        """Take one token for `key`, or raise `RateLimitedError` saying when to retry."""
        now = self._clock()
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.per_minute), now)
        bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1.0:
            raise RateLimitedError(self.scope, self.per_minute, (1.0 - bucket.tokens) / self._rate)
        bucket.tokens -= 1.0


def client_ip(scope: Scope) -> str:
    """The peer address uvicorn reports (it applies X-Forwarded-For from trusted proxies,
    see `--forwarded-allow-ips`)."""
    client = scope.get("client")
    return client[0] if client else "unknown"


class IpRateLimitMiddleware:
    """429 for an address over its budget of API calls (paths under `prefixes`), before
    anything of the request is read. Health checks, the widget's files and CORS
    preflights are not counted."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter | None,
                 prefixes: tuple[str, ...] = ("/api/", "/webhooks/")):
        self.app, self.limiter, self.prefixes = app, limiter, prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.limiter is not None and scope["type"] == "http" and scope["method"] != "OPTIONS"
                and scope["path"].startswith(self.prefixes)):
            try:
                self.limiter.check(client_ip(scope))
            except RateLimitedError as e:
                await error_response(e)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _BodyTooLarge(HTTPException):
    """Raised from `receive` when a body passes the limit. An HTTPException, because the
    framework turns any other error while it reads a body into a 400; this one reaches
    the HTTPException handler (or the middleware below) as the 413 it is."""

    def __init__(self, limit: int):
        super().__init__(413, str(BodyTooLargeError(limit)))


class BodySizeLimitMiddleware:
    """413 for a request body over `max_bytes`: refused on its Content-Length before a
    byte is read, or, for a chunked body, as soon as the bytes received pass the limit
    (so a huge body is never buffered, let alone parsed)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(BodyTooLargeError(self.max_bytes, declared))(scope, receive, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await error_response(BodyTooLargeError(self.max_bytes))(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
