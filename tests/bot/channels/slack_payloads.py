"""Slack Events API requests shaped like Slack's own, signed the way Slack signs them
(shared by the adapter's unit tests and the webhook tests against the real app)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
TEAM, CHANNEL, CUSTOMER, BOT_USER = "T061EG9R6", "C0LAN2Q65", "U2147483697", "U0LAN0Z89"


def message_event(
    text: str = "where is my order?",
    ts: str = "1355517523.000005",
    event_id: str = "Ev0PV52K21",
    **event: Any,
) -> dict[str, Any]:
    """An `event_callback` carrying one `message` event (fields of `event` override)."""
    return {
        "token": "XXYYZZ",
        "team_id": TEAM,
        "api_app_id": "A0MDYCDME",
        "event": {
            "type": "message",
            "channel": CHANNEL,
            "user": CUSTOMER,
            "text": text,
            "ts": ts,
            "channel_type": "im",
            **event,
        },
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1355517523,
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }


def signed(payload: dict[str, Any] | bytes, timestamp: float, secret: str = SIGNING_SECRET) -> tuple[bytes, dict]:
    """The raw body and the headers Slack sends with it."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    stamp = str(int(timestamp))
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }
    return body, headers
