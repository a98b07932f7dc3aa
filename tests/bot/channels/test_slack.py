"""The Slack adapter on fixed Events API payloads and a fixed clock: the v0 signature and
its replay window, the url_verification challenge, which events are customer messages,
and the chat.postMessage call a reply becomes (and how Slack's answers are read)."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from bot.channels.base import ApiCall, BadPayloadError, Channel, Outgoing, SignatureError, lower_headers
from bot.channels.config import ChannelsConfig
from bot.channels.registry import enabled_channels
from bot.channels.slack import SlackChannel, from_config
from tests.bot.channels.slack_payloads import (
    BOT_TOKEN,
    BOT_USER,
    CHANNEL,
    SIGNING_SECRET,
    TEAM,
    message_event,
    signed,
)

NOW = 1_700_000_000.0


@pytest.fixture
def slack() -> SlackChannel:
    return SlackChannel(SIGNING_SECRET, BOT_TOKEN)


def test_it_fulfils_the_channel_contract(slack):
    assert isinstance(slack, Channel) and slack.name == "slack"


# -- verify ---------------------------------------------------------------------------


def test_a_request_signed_with_the_secret_within_the_window_passes(slack):
    body, headers = signed(message_event(), NOW - 299)
    slack.verify(lower_headers(headers), body, NOW)  # no error


def test_the_signature_of_slacks_documented_example_is_accepted():
    # the example in Slack's "Verifying requests from Slack" guide
    example = SlackChannel("8f742231b10e8888abcd99yyyzzz85a5", None)
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = {
        "x-slack-request-timestamp": "1531420618",
        "x-slack-signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    example.verify(headers, body, 1531420618 + 10)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda body, h: (body, {k: v for k, v in h.items() if k != "x-slack-signature"}), "without"),
        (lambda body, h: (body, {k: v for k, v in h.items() if k != "x-slack-request-timestamp"}), "without"),
        (lambda body, h: (body + b" ", h), "wrong signature"),
        (lambda body, h: (body, {**h, "x-slack-signature": "v0=" + "0" * 64}), "wrong signature"),
        (lambda body, h: (body, {**h, "x-slack-request-timestamp": "yesterday"}), "not a number"),
    ],
)
def test_a_missing_wrong_or_malformed_signature_is_refused(slack, change, reason):
    body, headers = signed(message_event(), NOW)
    body, headers = change(body, lower_headers(headers))
    with pytest.raises(SignatureError, match=reason):
        slack.verify(headers, body, NOW)


def test_a_signature_made_with_another_secret_is_refused(slack):
    body, headers = signed(message_event(), NOW, secret="another-apps-secret")
    with pytest.raises(SignatureError, match="wrong signature"):
        slack.verify(lower_headers(headers), body, NOW)


@pytest.mark.parametrize("age", [301, 3600, -301])
def test_a_request_signed_outside_the_5_minute_window_is_refused_as_a_replay(slack, age):
    body, headers = signed(message_event(), NOW - age)
    with pytest.raises(SignatureError, match="replay window"):
        slack.verify(lower_headers(headers), body, NOW)


# -- handshake --------------------------------------------------------------------------


def test_the_url_verification_challenge_is_answered_with_the_challenge(slack):
    body = json.dumps(
        {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    )
    result = slack.handshake("POST", {}, body.encode())
    assert result is not None and result.status == 200
    assert result.body == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"


def test_an_event_callback_is_no_handshake(slack):
    assert slack.handshake("POST", {}, json.dumps(message_event()).encode()) is None
    assert slack.handshake("GET", {}, b"") is None


# -- parse ------------------------------------------------------------------------------


def test_a_direct_message_becomes_one_inbound_message_threaded_on_itself(slack):
    [m] = slack.parse(json.dumps(message_event("where is my order?", ts="111.0001")).encode())
    assert m.platform == "slack" and m.text == "where is my order?"
    assert m.event_id == f"{TEAM}:{CHANNEL}:111.0001"
    assert m.external_id == f"{TEAM}:{CHANNEL}:111.0001"
    assert m.address == {"channel": CHANNEL, "thread_ts": "111.0001"}


def test_a_reply_in_a_thread_belongs_to_the_threads_conversation(slack):
    [m] = slack.parse(json.dumps(message_event("and now?", ts="222.0002", thread_ts="111.0001")).encode())
    assert m.external_id == f"{TEAM}:{CHANNEL}:111.0001" and m.event_id == f"{TEAM}:{CHANNEL}:222.0002"
    assert m.address == {"channel": CHANNEL, "thread_ts": "111.0001"}


def test_a_mention_and_its_message_event_share_one_dedupe_id_and_the_mention_is_stripped(slack):
    text = f"<@{BOT_USER}> where is my order?"
    [mention] = slack.parse(json.dumps(message_event(text, type="app_mention", event_id="Ev1")).encode())
    [message] = slack.parse(json.dumps(message_event(text, event_id="Ev2")).encode())
    assert mention.event_id == message.event_id and mention.text == "where is my order?"


@pytest.mark.parametrize(
    "event",
    [
        {"bot_id": "B123", "subtype": "bot_message"},  # another bot
        {"user": BOT_USER},  # our own reply, echoed back
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"subtype": "channel_join"},
        {"type": "reaction_added"},
        {"text": f"<@{BOT_USER}>"},  # nothing but the mention
    ],
)
def test_bots_our_own_messages_edits_and_other_events_are_ignored(slack, event):
    assert slack.parse(json.dumps(message_event(**event)).encode()) == []


def test_unknown_payload_types_are_ignored(slack):
    assert slack.parse(json.dumps({"type": "app_rate_limited", "team_id": TEAM}).encode()) == []
    assert slack.parse(json.dumps({"type": "event_callback", "event": "not an object"}).encode()) == []


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", "\xff".encode("latin-1")])
def test_a_body_that_is_not_a_json_object_is_a_bad_payload(slack, body):
    with pytest.raises(BadPayloadError):
        slack.parse(body)


# -- render and the answers -------------------------------------------------------------


def test_a_reply_is_a_chat_post_message_in_the_thread_with_the_bot_token(slack):
    [call] = slack.render({"channel": CHANNEL, "thread_ts": "111.0001"}, Outgoing("Your order shipped."))
    assert call == ApiCall(
        "POST",
        "/chat.postMessage",
        {"channel": CHANNEL, "thread_ts": "111.0001", "text": "Your order shipped."},
        {"Authorization": f"Bearer {BOT_TOKEN}"},
    )


def test_quick_replies_become_numbered_lines(slack):
    [call] = slack.render({"channel": CHANNEL, "thread_ts": "1"}, Outgoing("Did you mean:", ("Returns", "Refunds")))
    assert call.json["text"] == "Did you mean:\n\n1. Returns\n2. Refunds"


def test_slacks_ok_false_is_a_failure_retried_only_when_rate_limited_or_internal(slack):
    assert slack.outcome(200, {}, b'{"ok": true, "ts": "1.2"}').ok
    gone = slack.outcome(200, {}, b'{"ok": false, "error": "channel_not_found"}')
    assert not gone.ok and not gone.retry and "channel_not_found" in gone.error
    limited = slack.outcome(200, {}, b'{"ok": false, "error": "ratelimited"}')
    assert not limited.ok and limited.retry
    throttled = slack.outcome(429, {"Retry-After": "30"}, b"")
    assert throttled.retry and throttled.retry_after == 30.0
    assert slack.outcome(503, {}, b"").retry and not slack.outcome(403, {}, b"").retry


# -- settings ---------------------------------------------------------------------------


def test_slack_is_off_without_its_signing_secret_and_on_with_it():
    assert from_config(ChannelsConfig()) is None
    assert "slack" not in enabled_channels(ChannelsConfig())
    on = ChannelsConfig(slack_signing_secret=SecretStr(SIGNING_SECRET), slack_bot_token=SecretStr(BOT_TOKEN))
    channel = enabled_channels(on)["slack"]
    [call] = channel.render({"channel": CHANNEL, "thread_ts": "1"}, Outgoing("hi"))
    assert call.headers == {"Authorization": f"Bearer {BOT_TOKEN}"}
