"""WhatsApp Cloud API: customers write to the business's phone number; Meta posts their
messages to /webhooks/whatsapp and we answer through the Graph API.

A webhook POST carries `entry[].changes[].value` objects: `messages` (what customers
wrote) and `statuses` (delivery and read receipts of what we sent: ignored, they are not
turns). Text and the customer's press of a reply button or a list row are turns; images,
voice notes, locations, reactions and the like are ignored, as the dialogue cannot read
them. A conversation is one customer (wa_id) on one business number (phone_number_id),
and a message's `id` is the dedupe key (Meta redelivers until it gets a 200).

Replies: plain text, or with one to three quick replies the platform's interactive reply
buttons (a title of at most 20 characters; the full text rides in the button id so that
the customer's press comes back whole); more buttons than that are numbered text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bot.channels.base import ApiCall, InboundMessage, Outgoing, SendOutcome, numbered
from bot.channels.config import ChannelsConfig
from bot.channels.meta import MetaWebhook, graph_outcome
from bot.channels.payloads import json_object, obj, objects, secret_value, split_text, text_of, truncate

log = logging.getLogger("csbot.channels")

VERIFY_TOKEN_SETTING = "CSBOT_WHATSAPP_VERIFY_TOKEN"
MAX_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256
MAX_TEXT = 4096
MAX_INTERACTIVE_BODY = 1024
# a button id we made carries the button's full text after this prefix
BUTTON_ID_PREFIX = "csbot:"


class WhatsAppChannel(MetaWebhook):
    """The WhatsApp Cloud API adapter (see the module docstring). `verify_token` answers
    the subscription handshake (none: every handshake is refused); `access_token` is
    the Bearer token of the API calls."""

    name = "whatsapp"

    app_secret_setting = "CSBOT_WHATSAPP_APP_SECRET"
    verify_token_setting = VERIFY_TOKEN_SETTING

    def __init__(self, app_secret: str, verify_token: str | None = None, access_token: str | None = None):
        super().__init__(app_secret, verify_token, access_token)

    def parse(self, body: bytes) -> list[InboundMessage]:
        data = json_object(self.name, body)
        if data.get("object") != "whatsapp_business_account":
            log.info("whatsapp webhook for object %r ignored", data.get("object"))
            return []
        messages: list[InboundMessage] = []
        for entry in objects(data.get("entry")):
            for change in objects(entry.get("changes")):
                value = obj(change.get("value"))
                phone_number_id = text_of(obj(value.get("metadata")).get("phone_number_id"))
                if phone_number_id is None:
                    continue
                for message in objects(value.get("messages")):
                    inbound = self._inbound(phone_number_id, message)
                    if inbound is not None:
                        messages.append(inbound)
        return messages

    def _inbound(self, phone_number_id: str, message: dict[str, Any]) -> InboundMessage | None:
        wa_id, message_id = text_of(message.get("from")), text_of(message.get("id"))
        text = message_text(message)
        if wa_id is None or message_id is None or text is None:
            log.debug("whatsapp message of type %r ignored", message.get("type"))
            return None
        return InboundMessage(
            platform=self.name,
            event_id=message_id,
            external_id=f"{phone_number_id}:{wa_id}",
            address={"phone_number_id": phone_number_id, "to": wa_id},
            text=text,
        )

    def render(self, address: Mapping[str, Any], outgoing: Outgoing) -> list[ApiCall]:
        path = f"/{address['phone_number_id']}/messages"
        headers = self.auth_headers()
        to = str(address["to"])
        buttons = outgoing.buttons
        if buttons and fits_buttons(outgoing.text, buttons):
            payload = {**_envelope(to), "type": "interactive", "interactive": _button_message(outgoing.text, buttons)}
            return [ApiCall("POST", path, payload, headers)]
        pieces = split_text(numbered(outgoing.text, buttons), MAX_TEXT)
        return [
            ApiCall("POST", path, {**_envelope(to), "type": "text", "text": {"body": piece}}, headers)
            for piece in pieces
        ]

    def outcome(self, status: int, headers: Mapping[str, str], body: bytes) -> SendOutcome:
        """Graph API throttling comes as a 400 that is worth another try (`graph_outcome`)."""
        return graph_outcome(status, headers, body)


def message_text(message: Mapping[str, Any]) -> str | None:
    """What the customer said in one `messages[]` item, or None for what is no text."""
    kind = message.get("type")
    if kind == "text":
        return text_of(obj(message.get("text")).get("body"))
    if kind == "interactive":
        interactive = obj(message.get("interactive"))
        reply = obj(interactive.get("button_reply") or interactive.get("list_reply"))
        button_id = text_of(reply.get("id"))
        if button_id is not None and button_id.startswith(BUTTON_ID_PREFIX):
            full = text_of(button_id[len(BUTTON_ID_PREFIX) :])
            if full is not None:
                return full
        return text_of(reply.get("title"))
    if kind == "button":  # a quick-reply button of a template message
        return text_of(obj(message.get("button")).get("text"))
    return None


def fits_buttons(text: str, buttons: tuple[str, ...]) -> bool:
    """Whether the reply can be interactive reply buttons: at most three, a body the
    platform accepts, and titles that stay distinct once cut to 20 characters."""
    if len(buttons) > MAX_BUTTONS or not text.strip() or len(text) > MAX_INTERACTIVE_BODY:
        return False
    titles = {truncate(b, MAX_BUTTON_TITLE) for b in buttons}
    ids = {_button_id(b) for b in buttons}
    return len(titles) == len(ids) == len(buttons) and all(b.strip() for b in buttons)


def _button_id(button: str) -> str:
    return (BUTTON_ID_PREFIX + button)[:MAX_BUTTON_ID]


def _envelope(to: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}


def _button_message(text: str, buttons: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "button",
        "body": {"text": text},
        "action": {
            "buttons": [
                {
                    "type": "reply",
                    "reply": {
                        "id": _button_id(b),
                        "title": truncate(b, MAX_BUTTON_TITLE),
                    },
                }
                for b in buttons
            ]
        },
    }


def from_config(config: ChannelsConfig) -> WhatsAppChannel | None:
    """The adapter, or None (off) while CSBOT_WHATSAPP_APP_SECRET is unset."""
    app_secret = secret_value(config.whatsapp_app_secret)
    if app_secret is None:
        return None
    if config.whatsapp_access_token is None:
        log.warning("whatsapp is on but CSBOT_WHATSAPP_ACCESS_TOKEN is unset: replies will be refused by the API")
    return WhatsAppChannel(
        app_secret=app_secret,
        verify_token=secret_value(config.whatsapp_verify_token),
        access_token=secret_value(config.whatsapp_access_token),
    )
