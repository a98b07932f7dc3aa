"""Rate limits (429 with Retry-After, per IP and per conversation) and the body-size
limit (413), in the real app; the token bucket on its own with a clock we drive."""

from __future__ import annotations

import asyncio

import pytest

from bot.server.errors import RateLimitedError
from bot.server.limits import ClientAddresses, IpRateLimitMiddleware, RateLimiter
from tests.bot.server.conftest import (
    copy_workspace,
    live_server,
    quiet_settings,
    unloaded_server,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_of_its_size_then_says_when_to_retry():
    clock = Clock()
    limiter = RateLimiter(3, "session", clock=clock)
    for _ in range(3):
        limiter.check("c1")
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("c1")
    assert caught.value.retry_after == 20  # 3 a minute: one token every 20 s
    assert "3 a minute" in str(caught.value)
    limiter.check("c2")  # another key has its own bucket
    clock.now += 20
    limiter.check("c1")
    with pytest.raises(RateLimitedError):
        limiter.check("c1")


def test_a_bucket_refills_to_its_size_and_no_further():
    clock = Clock()
    limiter = RateLimiter(2, "ip", clock=clock)
    limiter.check("a")
    clock.now += 3600
    limiter.check("a")
    limiter.check("a")
    with pytest.raises(RateLimitedError):
        limiter.check("a")


def test_the_limiter_forgets_the_least_recently_used_keys_beyond_its_size():
    clock = Clock()
    limiter = RateLimiter(1, "ip", clock=clock, max_keys=2)
    limiter.check("a")
    limiter.check("b")
    limiter.check("c")  # "a" is forgotten: a fresh bucket next time
    limiter.check("a")
    with pytest.raises(RateLimitedError):
        limiter.check("c")


def test_an_address_over_its_budget_gets_429_with_retry_after_but_health_checks_pass(tmp_path):
    with unloaded_server(quiet_settings(tmp_path, rate_limit_per_ip=5)) as live:
        statuses = [live.client.post("/api/v1/conversations").status_code for _ in range(5)]
        assert statuses == [503] * 5  # counted even while loading, before any body is read
        r = live.client.post("/api/v1/conversations")
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 12  # 5 a minute: one every 12 s
        assert "5 a minute" in r.json()["detail"] and f"retry after {r.headers['retry-after']} s" in r.json()["detail"]
        assert live.client.post("/webhooks/rest/webhook", json={}).status_code == 429
        # a platform's signed webhook is not counted per address (it is refused for its
        # missing signature or as off, never as over the budget)
        assert live.client.post("/webhooks/telegram", json={}).status_code == 404  # off here: no secret set
        assert live.client.get("/healthz").status_code == 200
        assert live.client.get("/readyz").status_code == 503  # not counted, not limited


def test_a_body_over_the_limit_is_413_even_before_the_models_load(tmp_path):
    with unloaded_server(quiet_settings(tmp_path, max_body_bytes=1024)) as live:
        r = live.client.post("/api/v1/conversations/abc/messages", json={"text": "x" * 2000})
        assert r.status_code == 413
        assert "the limit is 1024 bytes" in r.json()["detail"]


@pytest.mark.slow
def test_a_conversation_over_its_message_budget_gets_429_and_takes_no_turn(server_workspace, tmp_path):
    workspace = copy_workspace(server_workspace, tmp_path / "ws")
    with live_server(quiet_settings(workspace, rate_limit_per_session=3)) as live:
        cid = live.new_conversation()
        assert [live.say(cid, "hello").status_code for _ in range(3)] == [200] * 3
        r = live.say(cid, "hello")
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 20  # one message every 20 s
        assert "messages in this conversation" in r.json()["detail"]
        streamed = live.post(cid, "/messages/stream", {"text": "hello"})
        assert streamed.status_code == 429 and streamed.headers["content-type"] == "application/json"
        with live.store() as store:
            assert len(store.messages(cid)) == 6
        other = live.new_conversation()  # other conversations are not held up
        assert live.say(other, "hello").status_code == 200


def test_the_addresses_of_one_ipv6_64_share_one_budget_and_another_64_has_its_own():
    passed: list[str] = []
    statuses: list[int] = []

    async def app(scope, receive, send) -> None:
        passed.append(scope["client"][0])

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    middleware = IpRateLimitMiddleware(app, RateLimiter(2, "ip", clock=Clock()), ClientAddresses())

    async def scenario() -> None:
        for peer in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "2001:db8:1:3::1"):
            scope = {
                "type": "http",
                "method": "POST",
                "path": "/api/v1/conversations",
                "client": (peer, 50000),
                "headers": [],
            }
            await middleware(scope, receive, send)

    asyncio.run(scenario())
    assert passed == ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:3::1"]
    assert statuses == [429]
