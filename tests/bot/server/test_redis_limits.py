"""Rate limits shared across replicas through a real redis-server: the same buckets as
the in-process limiter, counted across two apps; while Redis is down each app falls back
to its own buckets (never a failed request), and counts together again once it is back."""

from __future__ import annotations

import logging
import time

import pytest

from bot.server.conversation_lock import redis_client
from bot.server.errors import RateLimitedError
from bot.server.limits import REDIS_LIMIT_PREFIX, RateLimiter, RedisRateLimiter
from bot.settings import CsbotSettings
from tests.bot.server.conftest import unloaded_server
from tests.bot.server.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, used by name


def shared_limiter(url: str, per_minute: int, scope: str = "session", **kwargs) -> RedisRateLimiter:
    """What one replica makes: its own client and its own fallback buckets."""
    return RedisRateLimiter(redis_client(url), RateLimiter(per_minute, scope), **kwargs)


def test_a_shared_bucket_allows_a_burst_of_its_size_then_says_when_to_retry(redis_server: RedisServer):
    limiter = shared_limiter(redis_server.url, 3)
    for _ in range(3):
        limiter.check("c1")
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("c1")
    assert caught.value.retry_after == 20  # 3 a minute: one token every 20 s, as in process
    assert caught.value.scope == "session"
    limiter.check("c2")  # another key has its own bucket
    assert not limiter.degraded


def test_two_replicas_draw_on_one_bucket_per_key(redis_server: RedisServer):
    replica_a, replica_b = shared_limiter(redis_server.url, 4), shared_limiter(redis_server.url, 4)
    for limiter in (replica_a, replica_b, replica_a, replica_b):
        limiter.check("203.0.113.9")
    for limiter in (replica_a, replica_b):
        with pytest.raises(RateLimitedError):
            limiter.check("203.0.113.9")


def test_a_shared_bucket_refills_at_its_rate_and_its_key_expires_once_full_again(redis_server: RedisServer):
    limiter = shared_limiter(redis_server.url, 120)  # two tokens a second
    for _ in range(120):
        limiter.check("k")
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("k")
    assert caught.value.retry_after == 1
    time.sleep(0.6)  # more than one token's worth (0.5 s) on the Redis server's clock
    limiter.check("k")
    with pytest.raises(RateLimitedError):
        limiter.check("k")
    ttl_ms = limiter.client.pttl(f"{REDIS_LIMIT_PREFIX}session:k")
    assert 0 < ttl_ms <= 61_000  # an idle key is gone once its bucket would be full


def test_while_redis_is_down_this_process_counts_alone_and_warns_once(tmp_path, caplog):
    down = RedisServer(tmp_path)  # never started: nothing listens on its port
    limiter = shared_limiter(down.url, 2, "ip", retry_seconds=60)
    with caplog.at_level(logging.WARNING, "csbot.server"):
        limiter.check("a")  # never refused because the limiter is down
        limiter.check("a")
        with pytest.raises(RateLimitedError) as caught:  # ... nor let through past the limit
            limiter.check("a")
        limiter.check("b")
    assert caught.value.retry_after == 30
    assert limiter.degraded
    warnings = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
    assert len(warnings) == 1


def test_the_limiter_returns_to_redis_once_it_answers_again(redis_server: RedisServer):
    limiter = shared_limiter(redis_server.url, 2, retry_seconds=0.05)
    limiter.check("a")
    redis_server.kill()
    limiter.check("a")  # the fallback's own bucket: full, it never saw the first request
    assert limiter.degraded
    redis_server.start()  # empty: no persistence
    time.sleep(0.06)
    limiter.check("a")
    assert not limiter.degraded
    limiter.check("a")
    with pytest.raises(RateLimitedError):
        limiter.check("a")
    assert limiter.client.exists(f"{REDIS_LIMIT_PREFIX}session:a")


def _statuses(servers, count: int) -> list[int]:
    """`count` API calls, alternating between the servers; their status codes."""
    return [servers[i % len(servers)].client.post("/api/v1/conversations").status_code for i in range(count)]


@pytest.mark.slow  # two apps, and a second's wait for the limiters to ask Redis again
def test_the_per_address_limit_counts_across_two_apps_and_degrades_per_app_while_redis_is_down(
    redis_server: RedisServer, tmp_path
):
    # two real apps (separate processes' state: their own runtimes and fallback buckets)
    # sharing one Redis; their models never load, the limit answers before that
    settings = CsbotSettings(
        workspace=tmp_path / "ws", server={"rate_limit_per_ip": 4, "redis_url": redis_server.url, "cors_origins": []}
    )
    with unloaded_server(settings) as a, unloaded_server(settings) as b:
        # 503 (still loading) means the limit let the call through
        assert _statuses([a, b], 5) == [503, 503, 503, 503, 429]
        refused = b.client.post("/api/v1/conversations")
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) == 15

        redis_server.kill()
        # each app counts on its own: 4 each, then 429; never a 500 because Redis is gone
        assert _statuses([a, b], 10) == [503] * 8 + [429, 429]

        redis_server.start()
        time.sleep(1.1)  # the limiters ask Redis again a second after it failed
        assert _statuses([a, b], 5) == [503, 503, 503, 503, 429]
