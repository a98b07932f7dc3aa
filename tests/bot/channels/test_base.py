"""What every platform shares: how an API answer is read (retry or not, Retry-After),
quick replies as numbered text, header names, the errors' messages and the registry."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.channels.base import (
    BadPayloadError,
    ChannelError,
    ChannelOffError,
    InboundMessage,
    SignatureError,
    classify_response,
    lower_headers,
    numbered,
    retry_after,
)
from bot.channels.config import ChannelsConfig
from bot.channels.registry import PLATFORMS, enabled_channels, enabling_setting
from bot.errors import CsbotError
from bot.settings import CsbotSettings


@pytest.mark.parametrize(
    ("status", "ok", "retry"),
    [(200, True, False), (204, True, False), (400, False, False), (403, False, False), (404, False, False),
     (429, False, True), (500, False, True), (502, False, True), (503, False, True)],
)  # fmt: skip
def test_2xx_is_delivered_429_and_5xx_are_retried_the_rest_fail_for_good(status, ok, retry):
    outcome = classify_response(status, {}, b"body")
    assert (outcome.ok, outcome.retry) == (ok, retry)
    assert outcome.error == ("" if ok else f"HTTP {status}: body")


def test_retry_after_is_read_in_seconds_whatever_the_header_case():
    assert classify_response(429, {"retry-after": "12"}, b"").retry_after == 12.0
    assert retry_after({"Retry-After": "1.5"}) == 1.5
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after({"Retry-After": "-3"}) == 0.0 and retry_after({}) is None


def test_quick_replies_as_numbered_text_and_none_leaves_the_text_alone():
    assert numbered("Pick one:", ("A", "B")) == "Pick one:\n\n1. A\n2. B"
    assert numbered("Hello", ()) == "Hello"


def test_header_names_are_lower_cased_for_verify():
    assert lower_headers({"X-Slack-Signature": "v0=1", "content-type": "x"}) == {
        "x-slack-signature": "v0=1",
        "content-type": "x",
    }


def test_the_errors_are_csbot_errors_and_off_says_which_setting_turns_it_on():
    for error in (SignatureError, BadPayloadError, ChannelOffError):
        assert issubclass(error, ChannelError) and issubclass(error, CsbotError)
    off = ChannelOffError("slack", enabling_setting("slack"))
    assert str(off) == "the slack channel is off: set CSBOT_SLACK_SIGNING_SECRET to turn it on"


def test_every_platform_has_its_enabling_secret_named_as_the_settings_flat_variable():
    for platform, (_, variable) in PLATFORMS.items():
        field = variable.removeprefix("CSBOT_").lower()
        assert field in ChannelsConfig.model_fields, platform


def test_no_channel_is_on_without_settings():
    assert enabled_channels(ChannelsConfig()) == {}


def test_flat_and_nested_variables_set_the_channels_and_secrets_stay_out_of_the_saved_copy():
    env = {
        "CSBOT_SLACK_SIGNING_SECRET": "flat-secret",
        "CSBOT_SLACK_BOT_TOKEN": "xoxb-flat",
        "CSBOT_CHANNELS__SLACK_BOT_TOKEN": "xoxb-nested",
        "CSBOT_SLACK_API_BASE": "http://127.0.0.1:9/api",
        "CSBOT_CHANNELS__SEND_MAX_ATTEMPTS": "4",
    }
    channels = CsbotSettings.from_env(env=env).channels
    assert channels.slack_signing_secret == SecretStr("flat-secret")
    assert channels.slack_bot_token == SecretStr("xoxb-nested")  # the nested name wins
    assert channels.slack_api_base == "http://127.0.0.1:9/api" and channels.send_max_attempts == 4
    saved = CsbotSettings.from_env(env=env).to_json()
    assert "flat-secret" not in str(saved) and "xoxb" not in str(saved)
    assert saved["channels"]["slack_api_base"] == "http://127.0.0.1:9/api"


def test_an_inbound_message_keeps_no_control_characters_but_newlines_and_tabs():
    message = InboundMessage("telegram", "e1", "chat-1", {"chat_id": 1}, "hi\x00 there\x1b\nsecond\tline\ud800")
    assert message.text == "hi there\nsecond\tline"
