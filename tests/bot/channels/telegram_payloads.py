"""Telegram Bot API Updates shaped like Telegram's own (shared by the adapter's unit tests
and the webhook tests against the real app)."""

from __future__ import annotations

import json
from typing import Any

SECRET = "s3cret-token_for-setWebhook"
BOT_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
CUSTOMER = {"id": 1111111, "is_bot": False, "first_name": "Sam", "language_code": "en"}
PRIVATE_CHAT = {"id": 1111111, "first_name": "Sam", "type": "private"}
BOT = {"id": 999000, "is_bot": True, "first_name": "csbot", "username": "csbot_demo_bot"}


def encode(update: dict[str, Any]) -> bytes:
    """The raw body Telegram posts."""
    return json.dumps(update).encode()


def text_update(text: str, update_id: int = 10000, **message: Any) -> dict[str, Any]:
    """An Update with a text message in the customer's private chat (`message` overrides)."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1365,
            "from": CUSTOMER,
            "chat": PRIVATE_CHAT,
            "date": 1441645532,
            "text": text,
            **message,
        },
    }


def button_update(data: str, keyboard: list[list[dict[str, str]]] | None, update_id: int = 10001) -> dict[str, Any]:
    """An Update for an inline keyboard button pressed (`keyboard`: the message's own;
    None when the message is too old for Telegram to send along)."""
    query: dict[str, Any] = {
        "id": "4382bfdwdsb323b2d9",
        "from": CUSTOMER,
        "chat_instance": "-2890211234567890",
        "data": data,
    }
    if keyboard is not None:
        query["message"] = {
            "message_id": 1366,
            "from": BOT,
            "chat": PRIVATE_CHAT,
            "date": 1441645540,
            "text": "What would you like to do?",
            "reply_markup": {"inline_keyboard": keyboard},
        }
    return {"update_id": update_id, "callback_query": query}


def secret_headers(secret: str = SECRET) -> dict[str, str]:
    """The headers Telegram sends with every Update of a webhook set with `secret`."""
    return {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret}
