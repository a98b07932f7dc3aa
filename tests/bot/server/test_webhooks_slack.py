"""Slack's webhook against the real app (a copy of the demo workspace, served by uvicorn)
with the fake Slack API on 127.0.0.1: signed, unsigned and stale requests, the challenge,
the reply arriving in the customer's thread, retries processed once, a 500 then 200
giving exactly one message, agents' messages forwarded, and a channel without its
secret answering 404."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bot.channels.config import ChannelsConfig
from bot.server.access import SECRET_FILE, channel_conversation_id
from tests.bot.channels.fake_platform import FakePlatform
from tests.bot.channels.slack_payloads import BOT_TOKEN, BOT_USER, CHANNEL, SIGNING_SECRET, TEAM, message_event, signed
from tests.bot.server.conftest import LiveServer, copy_workspace, live_server, quiet_settings

pytestmark = pytest.mark.slow

PATH = "/webhooks/slack/events"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePlatform]:
    with FakePlatform() as platform:
        yield platform


@pytest.fixture(scope="module")
def slack(demo_workspace, tmp_path_factory, fake) -> Iterator[LiveServer]:
    workspace = copy_workspace(demo_workspace, tmp_path_factory.mktemp("slack") / "ws")
    channels = ChannelsConfig(
        slack_signing_secret=SecretStr(SIGNING_SECRET),
        slack_bot_token=SecretStr(BOT_TOKEN),
        slack_api_base=fake.url,
        poll_interval_s=0.05,
        send_backoff_s=0.05,
    )
    settings = quiet_settings(workspace).model_copy(update={"channels": channels})
    with live_server(settings) as live:
        yield live


@pytest.fixture(autouse=True)
def fresh_calls(fake) -> None:
    fake.calls.clear()


def post(live: LiveServer, payload: dict | bytes, signed_at: float | None = None, **headers: str):
    body, signed_headers = signed(payload, time.time() if signed_at is None else signed_at)
    return live.client.post(PATH, content=body, headers={**signed_headers, **headers})


def conversation_of(live: LiveServer, thread: str) -> str:
    secret = (live.settings.workspace / SECRET_FILE).read_bytes().strip()
    return channel_conversation_id(secret, "slack", f"{TEAM}:{CHANNEL}:{thread}")


def sent_row(live: LiveServer, thread: str, timeout: float = 30.0) -> dict:
    """The outbox row of the reply in `thread`, once the worker marked it sent."""
    deadline = time.monotonic() + timeout
    with live.store() as store:
        while time.monotonic() < deadline:
            rows = [r for r in store.outgoing("slack") if r["address"]["thread_ts"] == thread]
            if rows and rows[0]["status"] == "sent":
                return rows[0]
            time.sleep(0.02)
    raise AssertionError(f"no sent reply in thread {thread}")


def test_the_url_verification_challenge_is_answered_when_signed(slack):
    challenge = {"token": "x", "challenge": "abc123", "type": "url_verification"}
    r = post(slack, challenge)
    assert r.status_code == 200 and r.text == "abc123"
    unsigned = slack.client.post(PATH, json=challenge)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "bad_signature"


def test_a_message_is_acknowledged_and_answered_in_its_thread(slack, fake):
    r = post(slack, message_event("can I pay with paypal?", ts="1700000001.000100"))
    assert r.status_code == 200 and r.json() == {"ok": True}
    [call] = fake.wait_for(1)
    assert call.path == "/chat.postMessage" and call.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert call.json["channel"] == CHANNEL and call.json["thread_ts"] == "1700000001.000100"
    assert "PayPal" in call.json["text"]
    with slack.store() as store:
        cid = conversation_of(slack, "1700000001.000100")
        assert store.conversation(cid)["channel"] == "slack"
        assert [m["role"] for m in store.messages(cid)] == ["customer", "bot"]


def test_a_retried_delivery_is_acknowledged_and_processed_once(slack, fake):
    event = message_event("hello", ts="1700000002.000200", event_id="Ev-retry")
    assert post(slack, event).status_code == 200
    assert post(slack, event, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}).status_code == 200
    fake.wait_for(1)
    with slack.store() as store:
        assert len([r for r in store.inbound("slack") if r["event_id"].endswith("1700000002.000200")]) == 1
        cid = conversation_of(slack, "1700000002.000200")
        assert [m["role"] for m in store.messages(cid)] == ["customer", "bot"]


@pytest.mark.parametrize("age", [301, 3600])
def test_a_stale_or_unsigned_message_is_refused_and_never_kept(slack, age):
    stale = post(slack, message_event("hello", ts=f"1700000003.{age}"), signed_at=time.time() - age)
    unsigned = slack.client.post(PATH, json=message_event("hello", ts=f"1700000004.{age}"))
    forged = post(slack, message_event("hello", ts=f"1700000005.{age}"), **{"X-Slack-Signature": "v0=" + "ab" * 32})
    assert [r.status_code for r in (stale, unsigned, forged)] == [401, 401, 401]
    with slack.store() as store:
        assert all(not r["event_id"].endswith(f".{age}") for r in store.inbound("slack"))


def test_malformed_json_is_a_400_and_unknown_events_are_acknowledged_and_ignored(slack):
    bad = post(slack, b'{"type": "event_callback", ')
    assert bad.status_code == 400 and bad.json()["code"] == "bad_payload"
    with slack.store() as store:
        before = len(store.inbound())
    for payload in (
        {"type": "app_rate_limited", "team_id": TEAM},
        message_event("edited", subtype="message_changed", ts="1700000006.1"),
        message_event("a bot", bot_id="B1", ts="1700000006.2"),
        message_event("our own reply", user=BOT_USER, ts="1700000006.3"),
    ):
        assert post(slack, payload).status_code == 200
    with slack.store() as store:
        assert len(store.inbound()) == before


def test_a_platform_answering_500_then_200_gets_exactly_one_message(slack, fake):
    fake.script("/chat.postMessage", (500, {}, b"try later"))
    post(slack, message_event("hello", ts="1700000007.000700"))
    first, second = fake.wait_for(2)
    assert first.json == second.json and first.json["thread_ts"] == "1700000007.000700"
    row = sent_row(slack, "1700000007.000700")
    assert row["attempts"] == 2  # marked sent: never sent again
    post(slack, message_event("hello", ts="1700000007.000777"))  # the worker carries on
    assert len(fake.wait_for(3)) == 3
    sent_row(slack, "1700000007.000777")
    assert len(fake.calls) == 3


def test_an_agents_message_reaches_the_customers_thread(slack, fake):
    post(slack, message_event("hello", ts="1700000008.000800"))
    fake.wait_for(1)
    with slack.store() as store:
        store.record_agent_message(conversation_of(slack, "1700000008.000800"), "Hi, this is Alex from support.")
    _, forwarded = fake.wait_for(2)
    assert forwarded.json == {
        "channel": CHANNEL,
        "thread_ts": "1700000008.000800",
        "text": "Hi, this is Alex from support.",
    }


def test_a_channel_without_its_secret_is_off(slack):
    for method, path in (
        ("POST", "/webhooks/telegram"),
        ("GET", "/webhooks/whatsapp"),
        ("POST", "/webhooks/messenger"),
    ):
        r = slack.client.request(method, path, content=json.dumps({"update_id": 1}))
        assert r.status_code == 404 and r.json()["code"] == "channel_off", path
