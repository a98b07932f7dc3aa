"""The webhooks before any model is loaded (the real app, its assistant never loading):
what needs no turn is answered (the challenge, refusals, channels that are off), and a
message gets 503 so that the platform delivers it again later, not a 200 that loses it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bot.channels.config import ChannelsConfig
from tests.bot.channels.slack_payloads import SIGNING_SECRET, message_event, signed
from tests.bot.server.conftest import LiveServer, quiet_settings, unloaded_server


@pytest.fixture(scope="module")
def loading(tmp_path_factory) -> Iterator[LiveServer]:
    channels = ChannelsConfig(slack_signing_secret=SecretStr(SIGNING_SECRET))
    settings = quiet_settings(tmp_path_factory.mktemp("ws")).model_copy(update={"channels": channels})
    with unloaded_server(settings) as live:
        yield live


def test_the_challenge_is_answered_while_loading(loading):
    body, headers = signed({"type": "url_verification", "challenge": "c-1"}, time.time())
    r = loading.client.post("/webhooks/slack/events", content=body, headers=headers)
    assert r.status_code == 200 and r.text == "c-1"


def test_a_message_while_loading_is_refused_with_503_for_the_platform_to_retry(loading):
    body, headers = signed(message_event(), time.time())
    r = loading.client.post("/webhooks/slack/events", content=body, headers=headers)
    assert r.status_code == 503 and "Retry-After" in r.headers


def test_bad_signatures_are_401_and_channels_without_secrets_404_while_loading(loading):
    r = loading.client.post("/webhooks/slack/events", json=message_event())
    assert r.status_code == 401 and r.json()["code"] == "bad_signature"
    for path in ("/webhooks/telegram", "/webhooks/whatsapp", "/webhooks/messenger"):
        r = loading.client.post(path, content=json.dumps({}))
        assert r.status_code == 404 and "is off" in r.json()["detail"], path
