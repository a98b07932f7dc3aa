"""WhatsApp Cloud API webhooks shaped like Meta's own (shared by the adapter's unit tests
and the webhook tests against the real app)."""

from __future__ import annotations

import json
from typing import Any

from bot.channels.meta import hub_signature

APP_SECRET = "0123456789abcdef0123456789abcdef"
VERIFY_TOKEN = "whatsapp-verify-me"
ACCESS_TOKEN = "EAAGm0PX4ZCpsBA-test-token"
PHONE_NUMBER_ID = "106540352242922"
WA_ID = "16505551234"
WAMID = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="


def webhook(value: dict[str, Any]) -> bytes:
    """A webhook body around one `changes[].value`, as Meta sends it."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        **value,
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }
    return json.dumps(body).encode()


def incoming(message: dict[str, Any], message_id: str = WAMID, wa_id: str = WA_ID) -> bytes:
    """A webhook with one customer message (`message` holds its type and content)."""
    contacts = [{"profile": {"name": "Sheena Nelson"}, "wa_id": wa_id}]
    item = {"from": wa_id, "id": message_id, "timestamp": "1749416383", **message}
    return webhook({"contacts": contacts, "messages": [item]})


def signed_headers(body: bytes, app_secret: str = APP_SECRET) -> dict[str, str]:
    """The headers Meta sends with `body`."""
    return {"Content-Type": "application/json", "X-Hub-Signature-256": hub_signature(app_secret, body)}
