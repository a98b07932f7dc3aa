"""Request limits that protect the workers: a body-size cap (413) and token-bucket rate
limits per client IP and per conversation (429 with Retry-After).

Without CSBOT_REDIS_URL the buckets live in this process's memory (`RateLimiter`): each
replica limits on its own, so behind a load balancer with N replicas a client may get up
to N times the limit. With it, the buckets live in Redis (`RedisRateLimiter`) and count
across every replica; while Redis is unreachable each replica falls back to its own
buckets (a customer is never refused because the limiter is down, and never limited
more tightly than with one replica), logs a warning at most once a minute, and returns
to Redis by itself once it answers again. Both checks run before a body is parsed or a
turn queued.

Who "a client" is: the peer address, unless the peer is one of the configured trusted
proxies (CSBOT_TRUSTED_PROXIES), in which case X-Forwarded-For is read from the right,
skipping the trusted hops. Anyone can write that header, so believing it from any peer
would let a client reset its limits by rotating it. An IPv6 client is keyed by its /64:
one host is usually given a whole /64, and could otherwise take a fresh address for
every request.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.server.errors import BodyTooLargeError, RateLimitedError, error_response

if TYPE_CHECKING:
    import redis

log = logging.getLogger("csbot.server")

REDIS_LIMIT_PREFIX = "csbot:ratelimit:"


class Limiter(Protocol):
    """What the middleware and the routes ask of a rate limiter."""

    per_minute: int
    scope: str

    def check(self, key: str) -> None:
        """Take one request from `key`'s budget, or raise `RateLimitedError`."""
        ...


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

    def __init__(
        self, per_minute: int, scope: str, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ):
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


# The token bucket of `RateLimiter.check`, in Redis, atomically (one script: no other
# client's request lands between the read and the write). The clock is the Redis
# server's (TIME), the one clock every replica shares. The key expires once its bucket
# would be full again, so idle clients take no memory. A float crosses the Lua boundary
# as a string: Redis would truncate a Lua number in the reply to an integer.
_TOKEN_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(bucket[1]) or capacity
local updated = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then
    tokens = tokens - 1
else
    wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'updated', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait)
"""


class RedisRateLimiter:
    """`RateLimiter`'s token buckets in Redis, shared by every replica: the same burst,
    refill, keys and Retry-After (the keys are `csbot:ratelimit:<scope>:<key>`).

    Why a token bucket in a Lua script, not INCR + EXPIRE windows: a fixed window lets a
    client send twice the limit across a window's edge, and can only say "retry when the
    window ends"; the bucket is exactly the one-replica behaviour, now shared, at the
    cost of one round trip (a script call) per request.

    While Redis fails, `fallback` (this process's own buckets) answers, with a warning in
    the log at most once a minute. After a failure Redis is tried again after
    `retry_seconds` rather than on every request, so a Redis that times out delays at most
    one request of that interval (the check runs on the event loop)."""

    def __init__(
        self,
        client: redis.Redis,
        fallback: RateLimiter,
        *,
        retry_seconds: float = 1.0,
        warn_every_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client, self.fallback = client, fallback
        self.per_minute, self.scope = fallback.per_minute, fallback.scope
        self.retry_seconds, self.warn_every_seconds, self._clock = retry_seconds, warn_every_seconds, clock
        self._script = client.register_script(_TOKEN_BUCKET)
        self._lock = threading.Lock()
        self._down_until = float("-inf")  # while in the future, Redis is not asked
        self._warned_at = float("-inf")

    @property
    def degraded(self) -> bool:
        """Whether requests are counted by this process alone for now."""
        return self._clock() < self._down_until

    def check(self, key: str) -> None:
        """Take one token for `key` from the shared bucket (from this process's bucket
        while Redis is unreachable), or raise `RateLimitedError` saying when to retry."""
        from redis.exceptions import RedisError

        if self.degraded:
            self.fallback.check(key)
            return
        try:
            wait = float(self._script(keys=[f"{REDIS_LIMIT_PREFIX}{self.scope}:{key}"], args=self._args()))
        except RedisError as e:
            self._went_down(e)
            self.fallback.check(key)
            return
        if wait > 0:
            raise RateLimitedError(self.scope, self.per_minute, wait)

    def _args(self) -> list[float]:
        return [self.per_minute, self.per_minute / 60.0]

    def _went_down(self, error: Exception) -> None:
        now = self._clock()
        with self._lock:
            self._down_until = now + self.retry_seconds
            warn = now - self._warned_at >= self.warn_every_seconds
            if warn:
                self._warned_at = now
        if warn:
            log.warning(
                "rate limits (%s): Redis is unreachable (%s: %s); this process counts on its own until it "
                "answers again (a client may get up to one limit per replica meanwhile)",
                self.scope,
                type(error).__name__,
                error,
            )


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddresses:
    """Works out which client a request comes from, trusting X-Forwarded-For only from
    the `trusted_proxies` (addresses or CIDR networks; none by default)."""

    def __init__(self, trusted_proxies: Iterable[str] = ()):
        self.trusted: tuple[IpNetwork, ...] = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    def address(self, scope: Scope) -> str:
        """The client's address: see `client_ip`."""
        return client_ip(scope, self.trusted)

    def key(self, scope: Scope) -> str:
        """What the per-client limits count against: see `client_key`."""
        return client_key(self.address(scope))


def client_ip(scope: Scope, trusted: tuple[IpNetwork, ...] = ()) -> str:
    """The peer address; when the peer is a trusted proxy, the rightmost X-Forwarded-For
    entry that is not a trusted proxy itself (the entries left of it were written by
    whoever sent the request, and prove nothing). An entry that is not an address ends
    the walk at the hop that passed it on, so junk cannot stand in for a client."""
    client = scope.get("client")
    peer = _parse_ip(client[0]) if client else None
    if peer is None:
        return client[0] if client else "unknown"
    if not _is_trusted(peer, trusted):
        return str(peer)
    known = peer
    for hop in reversed(_forwarded_for(scope)):
        address = _parse_ip(hop)
        if address is None:
            break
        known = address
        if not _is_trusted(address, trusted):
            break
    return str(known)


def client_key(address: str) -> str:
    """The key a client's limits count against: its IPv4 address, or the /64 network
    of its IPv6 address (anything else, such as "unknown", as it is)."""
    ip = _parse_ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip) if ip is not None else address


def _is_trusted(address: IpAddress, trusted: tuple[IpNetwork, ...]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def _forwarded_for(scope: Scope) -> list[str]:
    """Every X-Forwarded-For entry, left to right (several headers read as one list)."""
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            hops += [part.strip() for part in value.decode("latin-1").split(",")]
    return hops


def _parse_ip(text: str) -> IpAddress | None:
    """An address as peers and proxies write it ("1.2.3.4", "1.2.3.4:5678", "::1",
    "[::1]:5678"); an IPv4-mapped IPv6 address as the IPv4 one it is."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class IpRateLimitMiddleware:
    """429 for a client over its budget of API calls (paths under `prefixes`), before
    anything of the request is read. Health checks, the widget's files and CORS
    preflights are not counted, nor are the messaging platforms' signed webhooks: a
    platform posts every customer's message from a few addresses of its own, so a per-address
    budget would refuse a busy workspace's traffic, and a request without a valid signature
    costs one HMAC before it is refused. The Rasa REST channel, which has no signature,
    is counted."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: Limiter | None,
        clients: ClientAddresses,
        prefixes: tuple[str, ...] = ("/api/", "/webhooks/rest/"),
    ):
        self.app, self.limiter, self.clients, self.prefixes = app, limiter, clients, prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.limiter is not None
            and scope["type"] == "http"
            and scope["method"] != "OPTIONS"
            and scope["path"].startswith(self.prefixes)
        ):
            try:
                self.limiter.check(self.clients.key(scope))
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
