"""Telegram Bot API: customers write to the bot; Telegram posts each Update to
/webhooks/telegram (registered with `setWebhook` and a `secret_token`) and we answer
with `sendMessage`.

Telegram signs nothing: it proves itself by sending the `secret_token` given to
setWebhook in `X-Telegram-Bot-Api-Secret-Token`, compared in constant time. An Update's
`update_id` is the dedupe key (Telegram redelivers until it gets a 200). A text message
is a turn, and so is the press of an inline keyboard button (a `callback_query`: the
customer chose a quick reply); edits, photos, stickers, channel posts, messages from
other bots and every other update kind are ignored. A conversation is one chat.

Quick replies are an inline keyboard, one button a row. A button's `callback_data` may
hold 64 bytes: a longer button text is sent cut with its index in front, and the press
is read back as the full text of the button it names in the message's own keyboard,
which Telegram returns with the callback query.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

from bot.channels.base import (
    ApiCall,
    InboundMessage,
    Outgoing,
    SendOutcome,
    SignatureError,
    WebhookResult,
    classify_response,
)
from bot.channels.config import ChannelsConfig
from bot.channels.payloads import id_of, json_object, obj, objects, secret_value, split_text, text_of, truncate_utf8

log = logging.getLogger("csbot.channels")

SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64  # bytes


class TelegramChannel:
    """The Telegram adapter (see the module docstring). `secret_token` is the one given to
    setWebhook; `bot_token` names the bot in the API paths (/bot<token>/sendMessage)."""

    name = "telegram"

    def __init__(self, secret_token: str, bot_token: str | None = None):
        if not secret_token:
            raise ValueError("TelegramChannel needs the webhook secret token (CSBOT_TELEGRAM_SECRET_TOKEN)")
        self._secret_token, self._bot_token = secret_token, bot_token

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        given = headers.get(SECRET_HEADER)
        if not given:
            raise SignatureError(
                "telegram webhook without X-Telegram-Bot-Api-Secret-Token: "
                "call setWebhook with secret_token=CSBOT_TELEGRAM_SECRET_TOKEN"
            )
        if not hmac.compare_digest(given.encode("utf-8"), self._secret_token.encode("utf-8")):
            raise SignatureError(
                "telegram webhook with a wrong secret token: it must equal CSBOT_TELEGRAM_SECRET_TOKEN"
            )

    def handshake(self, method: str, query: Mapping[str, str], body: bytes) -> WebhookResult | None:
        return None  # setWebhook is called by the operator; Telegram sends no challenge

    def parse(self, body: bytes) -> list[InboundMessage]:
        update = json_object(self.name, body)
        update_id = id_of(update.get("update_id"))
        if update_id is None:
            log.info("telegram update without update_id ignored")
            return []
        if "message" in update:
            found = _message_turn(obj(update["message"]))
        elif "callback_query" in update:
            found = _button_turn(obj(update["callback_query"]))
        else:
            found = None  # edited_message, channel_post, my_chat_member, ...
        if found is None:
            log.debug("telegram update %s ignored (no customer text)", update_id)
            return []
        address, text = found
        return [
            InboundMessage(
                platform=self.name,
                event_id=update_id,
                external_id=str(address["chat_id"]),
                address=address,
                text=text,
            )
        ]

    def render(self, address: Mapping[str, Any], outgoing: Outgoing) -> list[ApiCall]:
        path = f"/bot{self._bot_token or ''}/sendMessage"
        pieces = split_text(outgoing.text, MAX_TEXT)
        buttons = tuple(b for b in outgoing.buttons if b.strip())
        calls = []
        for i, piece in enumerate(pieces):
            payload: dict[str, Any] = {"chat_id": address["chat_id"], "text": piece}
            if "message_thread_id" in address:
                payload["message_thread_id"] = address["message_thread_id"]
            if buttons and i == len(pieces) - 1:
                payload["reply_markup"] = {"inline_keyboard": [[_button(n, b)] for n, b in enumerate(buttons)]}
            calls.append(ApiCall("POST", path, payload))
        return calls

    def outcome(self, status: int, headers: Mapping[str, str], body: bytes) -> SendOutcome:
        """Telegram says how long to wait after a 429 in the body (`parameters.retry_after`)."""
        result = classify_response(status, headers, body)
        if status != 429 or result.retry_after is not None:
            return result
        try:
            wait = json.loads(body).get("parameters", {}).get("retry_after")
        except (ValueError, AttributeError):
            return result
        if isinstance(wait, int | float) and not isinstance(wait, bool) and wait >= 0:
            return SendOutcome(ok=False, retry=True, error=result.error, retry_after=float(wait))
        return result


def callback_data(index: int, text: str) -> str:
    """A button's callback_data: its text when it fits in 64 bytes, else `<index>:` and
    as much of the text as fits (readable in logs, and unique within the keyboard)."""
    if len(text.encode("utf-8")) <= MAX_CALLBACK_DATA:
        return text
    prefix = f"{index}:"
    return prefix + truncate_utf8(text, MAX_CALLBACK_DATA - len(prefix))


def _button(index: int, text: str) -> dict[str, str]:
    return {"text": text, "callback_data": callback_data(index, text)}


def _chat_address(message: Mapping[str, Any]) -> dict[str, Any] | None:
    chat_id = obj(message.get("chat")).get("id")
    if id_of(chat_id) is None:
        return None
    address: dict[str, Any] = {"chat_id": chat_id}
    # a forum group's topic: the reply goes to the topic the customer wrote in
    if message.get("is_topic_message") and id_of(message.get("message_thread_id")) is not None:
        address["message_thread_id"] = message["message_thread_id"]
    return address


def _message_turn(message: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    if obj(message.get("from")).get("is_bot"):
        return None
    text = text_of(message.get("text"))
    address = _chat_address(message)
    return (address, text) if address is not None and text is not None else None


def _button_turn(query: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    data = text_of(query.get("data"))
    message = obj(query.get("message"))
    address = _chat_address(message)
    if address is None:
        # the keyboard's message is too old for Telegram to return: answer the customer directly
        user_id = obj(query.get("from")).get("id")
        address = {"chat_id": user_id} if id_of(user_id) is not None else None
    if data is None or address is None:
        return None
    return address, _pressed_text(message, data)


def _pressed_text(message: Mapping[str, Any], data: str) -> str:
    """The full text of the button whose callback_data is `data`, from the keyboard of
    the message it was pressed on; `data` itself when that keyboard is not there."""
    rows = obj(message.get("reply_markup")).get("inline_keyboard")
    for row in rows if isinstance(rows, list) else []:
        for button in objects(row):
            text = text_of(button.get("text"))
            if button.get("callback_data") == data and text is not None:
                return text
    return data


def from_config(config: ChannelsConfig) -> TelegramChannel | None:
    """The adapter, or None (off) while CSBOT_TELEGRAM_SECRET_TOKEN is unset."""
    secret_token = secret_value(config.telegram_secret_token)
    if secret_token is None:
        return None
    bot_token = secret_value(config.telegram_bot_token)
    if bot_token is None:
        log.warning("telegram is on but CSBOT_TELEGRAM_BOT_TOKEN is unset: replies will be refused by the API")
    return TelegramChannel(secret_token=secret_token, bot_token=bot_token)
