"""Slack, through the Events API: the `url_verification` challenge, the v0 signing
secret over the raw body with a 5-minute replay window, customer messages out of
`event_callback`s, and replies with `chat.postMessage` in the thread the customer wrote in.

A thread is one csbot conversation (external id `team:channel:thread_ts`). The dedupe id
is the message itself (`team:channel:ts`) rather than Slack's `event_id`: it is the same
for Slack's retries (which carry X-Slack-Retry-Num) and also for the `message` and
`app_mention` events one mention produces, so a mention is answered once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from bot.channels.base import (
    ApiCall,
    BadPayloadError,
    InboundMessage,
    Outgoing,
    SendOutcome,
    SignatureError,
    WebhookResult,
    classify_response,
    numbered,
)
from bot.channels.config import ChannelsConfig

# a request signed longer ago than this (or this far in the future) is refused as a replay
REPLAY_WINDOW_S = 300
# message events that are the customer writing; every subtype (bot_message,
# message_changed, message_deleted, channel_join...) is something else
_MESSAGE_EVENTS = ("message", "app_mention")
_MENTION = re.compile(r"<@[A-Z0-9]+>\s*")
# chat.postMessage errors worth another try (everything else will fail again)
_RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackChannel:
    name = "slack"

    def __init__(self, signing_secret: str, bot_token: str | None):
        self._secret = signing_secret.encode("utf-8")
        self._token = bot_token

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not timestamp or not signature:
            raise SignatureError("Slack request without X-Slack-Request-Timestamp and X-Slack-Signature")
        try:
            sent = int(timestamp)
        except ValueError:
            raise SignatureError("Slack request with a timestamp that is not a number") from None
        if abs(now - sent) > REPLAY_WINDOW_S:
            raise SignatureError(f"Slack request signed {now - sent:.0f} s from now: outside the replay window")
        expected = "v0=" + hmac.new(self._secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise SignatureError("Slack request with a wrong signature (check CSBOT_SLACK_SIGNING_SECRET)")

    def handshake(self, method: str, query: Mapping[str, str], body: bytes) -> WebhookResult | None:
        if method != "POST":
            return None
        payload = _loads(body)
        if payload.get("type") != "url_verification":
            return None
        challenge = payload.get("challenge")
        if not isinstance(challenge, str):
            raise BadPayloadError("Slack url_verification without a challenge")
        return WebhookResult(body=challenge)

    def parse(self, body: bytes) -> list[InboundMessage]:
        payload = _loads(body)
        if payload.get("type") != "event_callback":
            return []
        event = payload.get("event")
        if not isinstance(event, dict) or event.get("type") not in _MESSAGE_EVENTS:
            return []
        if event.get("bot_id") or event.get("subtype") or event.get("user") in _bot_users(payload):
            return []  # other bots, our own replies, edits and deletions
        team = payload.get("team_id") or event.get("team") or ""
        channel, ts, user, text = event.get("channel"), event.get("ts"), event.get("user"), event.get("text")
        if not all(isinstance(v, str) and v for v in (channel, ts, user)) or not isinstance(text, str):
            return []
        text = _MENTION.sub("", text).strip()
        if not text:
            return []
        thread = event.get("thread_ts") or ts
        return [
            InboundMessage(
                platform=self.name,
                event_id=f"{team}:{channel}:{ts}",
                external_id=f"{team}:{channel}:{thread}",
                address={"channel": channel, "thread_ts": thread},
                text=text,
            )
        ]

    def render(self, address: Mapping[str, Any], outgoing: Outgoing) -> list[ApiCall]:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        body = {
            "channel": address["channel"],
            "thread_ts": address["thread_ts"],
            "text": numbered(outgoing.text, outgoing.buttons),
        }
        return [ApiCall("POST", "/chat.postMessage", body, headers)]

    def outcome(self, status: int, headers: Mapping[str, str], body: bytes) -> SendOutcome:
        """Slack answers many failures with 200 and {"ok": false, "error": ...}."""
        result = classify_response(status, headers, body)
        if not result.ok:
            return result
        try:
            answer = json.loads(body)
        except ValueError:
            return SendOutcome(ok=False, retry=True, error="Slack answered with a body that is not JSON")
        if isinstance(answer, dict) and answer.get("ok") is False:
            error = str(answer.get("error", "unknown error"))
            return SendOutcome(ok=False, retry=error in _RETRYABLE_ERRORS, error=f"Slack: {error}")
        return result


def _loads(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError as e:
        raise BadPayloadError(f"Slack request body is not JSON: {e}") from None
    if not isinstance(payload, dict):
        raise BadPayloadError("Slack request body is not a JSON object")
    return payload


def _bot_users(payload: Mapping[str, Any]) -> set[str]:
    """The app's own bot user ids (its messages come back as events)."""
    found = set()
    for a in payload.get("authorizations") or ():
        if isinstance(a, dict) and a.get("is_bot") and isinstance(a.get("user_id"), str):
            found.add(a["user_id"])
    return found


def from_config(config: ChannelsConfig) -> SlackChannel | None:
    """Slack's adapter, or None (off) when CSBOT_SLACK_SIGNING_SECRET is unset."""
    if config.slack_signing_secret is None:
        return None
    token = config.slack_bot_token.get_secret_value() if config.slack_bot_token else None
    return SlackChannel(config.slack_signing_secret.get_secret_value(), token)
