"""Messenger webhooks shaped like Meta's own (shared by the adapter's unit tests and the
webhook tests against the real app)."""

from __future__ import annotations

import json
from typing import Any

from bot.channels.meta import hub_signature

APP_SECRET = "fedcba9876543210fedcba9876543210"
VERIFY_TOKEN = "messenger-verify-me"
PAGE_TOKEN = "EAAJ-page-token-for-tests"
PAGE_ID = "109876543210987"
PSID = "6543210987654321"
MID = "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"


def webhook(*events: dict[str, Any]) -> bytes:
    """A webhook body with these `messaging` events, as Meta sends it."""
    body = {"object": "page", "entry": [{"id": PAGE_ID, "time": 1458692752478, "messaging": list(events)}]}
    return json.dumps(body).encode()


def from_customer(psid: str = PSID, **event: Any) -> dict[str, Any]:
    """A `messaging` event from the customer `psid` to the Page (`event` holds its kind)."""
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": 1458692752478, **event}


def signed_headers(body: bytes, app_secret: str = APP_SECRET) -> dict[str, str]:
    """The headers Meta sends with `body`."""
    return {"Content-Type": "application/json", "X-Hub-Signature-256": hub_signature(app_secret, body)}
