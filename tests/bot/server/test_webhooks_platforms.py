"""Telegram's, WhatsApp's and Messenger's webhooks against the real app (a copy of the
demo workspace, served by uvicorn) with one fake platform API on 127.0.0.1 standing in
for all three: the subscription handshakes, signed requests answered on the customer's
own platform, unsigned and forged ones refused and never kept, a redelivery processed
once, receipts and echoes ignored, and Graph API throttling retried into one message."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from bot.channels.config import ChannelsConfig
from tests.bot.channels import messenger_payloads as messenger
from tests.bot.channels import telegram_payloads as telegram
from tests.bot.channels import whatsapp_payloads as whatsapp
from tests.bot.channels.fake_platform import Call, FakePlatform
from tests.bot.server.conftest import LiveServer, copy_workspace, live_server, quiet_settings

pytestmark = pytest.mark.slow

QUESTION = "can I pay with paypal?"


@dataclass(frozen=True)
class Platform:
    """How a test talks to one platform's webhook and reads what the worker sent back."""

    name: str
    path: str
    # (customer number, event number, text) -> (raw body, its dedupe id)
    message: Callable[[int, int, str], tuple[bytes, str]]
    sign: Callable[[bytes], dict[str, str]]
    forged: dict[str, str]
    reply_path: str
    auth: str | None  # the Authorization header the API call carries
    recipient: Callable[[Any], str]  # the customer an API call's JSON is for
    text: Callable[[Any], str]  # the text an API call's JSON delivers
    ignored: tuple[bytes, ...]  # deliveries that are no customer turn

    def customer(self, n: int) -> str:
        return str(n if self.name != "messenger" else f"{messenger.PSID[:-4]}{n:04d}")


def _telegram_message(n: int, event: int, text: str) -> tuple[bytes, str]:
    user = {**telegram.CUSTOMER, "id": n}
    update = telegram.text_update(text, update_id=event, chat={"id": n, "type": "private"}, **{"from": user})
    return telegram.encode(update), str(event)


def _whatsapp_message(n: int, event: int, text: str) -> tuple[bytes, str]:
    wamid = f"wamid.TEST{event}"
    return whatsapp.incoming({"type": "text", "text": {"body": text}}, message_id=wamid, wa_id=str(n)), wamid


def _messenger_message(n: int, event: int, text: str) -> tuple[bytes, str]:
    mid = f"m_TEST{event}"
    psid = f"{messenger.PSID[:-4]}{n:04d}"
    return messenger.webhook(messenger.from_customer(psid=psid, message={"mid": mid, "text": text})), mid


_STATUSES = [{"id": whatsapp.WAMID, "status": "delivered", "timestamp": "1", "recipient_id": whatsapp.WA_ID}]
_ECHO = {
    "sender": {"id": messenger.PAGE_ID},
    "recipient": {"id": messenger.PSID},
    "timestamp": 1,
    "message": {"is_echo": True, "app_id": 1, "mid": "m_echo", "text": "our own reply"},
}

PLATFORMS = {
    "telegram": Platform(
        name="telegram",
        path="/webhooks/telegram",
        message=_telegram_message,
        sign=lambda body: telegram.secret_headers(),
        forged=telegram.secret_headers("guessed"),
        reply_path=f"/bot{telegram.BOT_TOKEN}/sendMessage",
        auth=None,
        recipient=lambda j: str(j["chat_id"]),
        text=lambda j: j["text"],
        ignored=(
            telegram.encode({"update_id": 90001, "edited_message": telegram.text_update("edited")["message"]}),
            telegram.encode({"update_id": 90002, "my_chat_member": {"chat": telegram.PRIVATE_CHAT, "date": 1}}),
            telegram.encode(telegram.text_update("", update_id=90003, sticker={"file_id": "x"})),
        ),
    ),
    "whatsapp": Platform(
        name="whatsapp",
        path="/webhooks/whatsapp",
        message=_whatsapp_message,
        sign=whatsapp.signed_headers,
        forged=whatsapp.signed_headers(b"another body"),
        reply_path=f"/{whatsapp.PHONE_NUMBER_ID}/messages",
        auth=f"Bearer {whatsapp.ACCESS_TOKEN}",
        recipient=lambda j: j["to"],
        text=lambda j: j["text"]["body"] if j["type"] == "text" else j["interactive"]["body"]["text"],
        ignored=(
            whatsapp.webhook({"statuses": _STATUSES}),
            whatsapp.incoming({"type": "image", "image": {"id": "1", "mime_type": "image/jpeg"}}, "wamid.IMG"),
        ),
    ),
    "messenger": Platform(
        name="messenger",
        path="/webhooks/messenger",
        message=_messenger_message,
        sign=messenger.signed_headers,
        forged=messenger.signed_headers(b"another body"),
        reply_path="/me/messages",
        auth=f"Bearer {messenger.PAGE_TOKEN}",
        recipient=lambda j: j["recipient"]["id"],
        text=lambda j: j["message"]["text"],
        ignored=(
            messenger.webhook(_ECHO),
            messenger.webhook(messenger.from_customer(delivery={"mids": ["m_x"], "watermark": 1})),
            messenger.webhook(messenger.from_customer(read={"watermark": 1})),
        ),
    ),
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePlatform]:
    with FakePlatform() as platform:
        yield platform


@pytest.fixture(scope="module")
def live(demo_workspace, tmp_path_factory, fake) -> Iterator[LiveServer]:
    workspace = copy_workspace(demo_workspace, tmp_path_factory.mktemp("platforms") / "ws")
    channels = ChannelsConfig(
        telegram_secret_token=SecretStr(telegram.SECRET),
        telegram_bot_token=SecretStr(telegram.BOT_TOKEN),
        telegram_api_base=fake.url,
        whatsapp_app_secret=SecretStr(whatsapp.APP_SECRET),
        whatsapp_verify_token=SecretStr(whatsapp.VERIFY_TOKEN),
        whatsapp_access_token=SecretStr(whatsapp.ACCESS_TOKEN),
        whatsapp_api_base=fake.url,
        messenger_app_secret=SecretStr(messenger.APP_SECRET),
        messenger_verify_token=SecretStr(messenger.VERIFY_TOKEN),
        messenger_page_token=SecretStr(messenger.PAGE_TOKEN),
        messenger_api_base=fake.url,
        poll_interval_s=0.05,
        send_backoff_s=0.05,
    )
    settings = quiet_settings(workspace).model_copy(update={"channels": channels})
    with live_server(settings) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_calls(fake) -> None:
    fake.calls.clear()


def deliver(live: LiveServer, platform: Platform, body: bytes, headers: dict[str, str] | None = None):
    return live.client.post(platform.path, content=body, headers=platform.sign(body) if headers is None else headers)


def inbox_rows(live: LiveServer, platform: Platform, event_id: str) -> list[dict]:
    with live.store() as store:
        return [r for r in store.inbound(platform.name) if r["event_id"] == event_id]


def sent_row(live: LiveServer, platform: Platform, conversation_id: str, timeout: float = 30.0) -> dict:
    """The outbox row of the reply in that conversation, once the worker marked it sent."""
    deadline = time.monotonic() + timeout
    with live.store() as store:
        while time.monotonic() < deadline:
            rows = [r for r in store.outgoing(platform.name) if r["conversation_id"] == conversation_id]
            if rows and rows[0]["status"] == "sent":
                return rows[0]
            time.sleep(0.02)
    raise AssertionError(f"no sent {platform.name} reply in {conversation_id}")


def calls_to(fake: FakePlatform, platform: Platform, count: int) -> list[Call]:
    return [c for c in fake.wait_for(count) if c.path == platform.reply_path]


@pytest.mark.parametrize(
    ("name", "token"), [("whatsapp", whatsapp.VERIFY_TOKEN), ("messenger", messenger.VERIFY_TOKEN)]
)
def test_the_subscription_handshake_answers_only_its_verify_token(live, name, token):
    path = PLATFORMS[name].path
    query = {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "1158201444"}
    r = live.client.get(path, params=query)
    assert r.status_code == 200 and r.text == "1158201444"
    assert r.headers["content-type"].startswith("text/plain")
    wrong = live.client.get(path, params={**query, "hub.verify_token": "guess"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "bad_signature"
    bare = live.client.get(path)
    assert bare.status_code == 400 and bare.json()["code"] == "bad_payload"


@pytest.mark.parametrize("name", list(PLATFORMS))
def test_a_signed_message_is_answered_on_its_platform(live, fake, name):
    platform = PLATFORMS[name]
    body, event_id = platform.message(101, 1001, QUESTION)
    r = deliver(live, platform, body)
    assert r.status_code == 200 and r.json() == {"ok": True}
    [call] = calls_to(fake, platform, 1)
    assert call.method == "POST"
    assert call.headers.get("authorization") == platform.auth
    assert platform.recipient(call.json) == platform.customer(101)
    assert "PayPal" in platform.text(call.json)
    [row] = inbox_rows(live, platform, event_id)
    with live.store() as store:
        assert store.conversation(row["conversation_id"])["channel"] == name
        assert [m["role"] for m in store.messages(row["conversation_id"])] == ["customer", "bot"]
    assert sent_row(live, platform, row["conversation_id"])["attempts"] == 1


@pytest.mark.parametrize("name", list(PLATFORMS))
def test_a_redelivery_is_acknowledged_and_processed_once(live, fake, name):
    platform = PLATFORMS[name]
    body, event_id = platform.message(102, 1002, "hello")
    assert deliver(live, platform, body).status_code == 200
    assert deliver(live, platform, body).status_code == 200  # the platform did not see our 200 in time
    fake.wait_for(1)
    [row] = inbox_rows(live, platform, event_id)
    sent_row(live, platform, row["conversation_id"])
    with live.store() as store:
        assert [m["role"] for m in store.messages(row["conversation_id"])] == ["customer", "bot"]
    assert len(fake.calls) == 1


@pytest.mark.parametrize("name", list(PLATFORMS))
def test_unsigned_and_forged_requests_are_refused_and_never_kept(live, name):
    platform = PLATFORMS[name]
    body, event_id = platform.message(103, 1003, "hello")
    unsigned = live.client.post(platform.path, content=body, headers={"Content-Type": "application/json"})
    forged = deliver(live, platform, body, platform.forged)
    for r in (unsigned, forged):
        assert r.status_code == 401 and r.json()["code"] == "bad_signature"
    assert inbox_rows(live, platform, event_id) == []


@pytest.mark.parametrize("name", list(PLATFORMS))
def test_receipts_echoes_and_other_events_are_acknowledged_and_ignored(live, name):
    platform = PLATFORMS[name]
    with live.store() as store:
        before = len(store.inbound())
    for body in platform.ignored:
        r = deliver(live, platform, body)
        assert r.status_code == 200 and r.json() == {"ok": True}
    bad = deliver(live, platform, b'{"object": "page", ')
    assert bad.status_code == 400 and bad.json()["code"] == "bad_payload"
    with live.store() as store:
        assert len(store.inbound()) == before


def test_graph_api_throttling_is_retried_into_exactly_one_message(live, fake):
    platform = PLATFORMS["whatsapp"]
    throttled = json.dumps({"error": {"message": "(#130429) Rate limit hit", "code": 130429}}).encode()
    fake.script(platform.reply_path, (400, {"Content-Type": "application/json"}, throttled))
    body, event_id = platform.message(104, 1004, QUESTION)
    assert deliver(live, platform, body).status_code == 200
    first, second = fake.wait_for(2)
    assert first.json == second.json and first.json["to"] == "104"
    [row] = inbox_rows(live, platform, event_id)
    assert sent_row(live, platform, row["conversation_id"])["attempts"] == 2


def test_an_agents_message_reaches_the_customer_on_messenger(live, fake):
    platform = PLATFORMS["messenger"]
    body, event_id = platform.message(105, 1005, "hello")
    deliver(live, platform, body)
    fake.wait_for(1)
    [row] = inbox_rows(live, platform, event_id)
    with live.store() as store:
        store.record_agent_message(row["conversation_id"], "Hi, this is Alex from support.")
    _, forwarded = fake.wait_for(2)
    assert forwarded.json == {
        "recipient": {"id": platform.customer(105)},
        "messaging_type": "RESPONSE",
        "message": {"text": "Hi, this is Alex from support."},
    }
