"""Facebook Messenger: customers write to the business's Page; Meta posts their messages
to /webhooks/messenger and we answer through the Send API.

A webhook POST (`object: "page"`) carries `entry[].messaging[]` events. A message with
text is a turn (a quick reply pressed comes back as its payload, which is the button's
full text, since titles are cut to 20 characters); a postback (a persistent-menu item,
the Get Started button) is a turn with its title. Echoes of what the Page itself sent
(`is_echo`), delivery and read receipts, reactions and messages with only attachments are
ignored. The customer is their page-scoped id (PSID); `message.mid` is the dedupe key.

Replies: the text (cut into pieces of at most 2000 characters) with up to 13 quick replies
on the last piece; more than 13 become numbered text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bot.channels.base import ApiCall, InboundMessage, Outgoing, SendOutcome, numbered
from bot.channels.config import ChannelsConfig
from bot.channels.meta import MetaWebhook, graph_outcome
from bot.channels.payloads import id_of, json_object, obj, objects, secret_value, split_text, text_of, truncate

log = logging.getLogger("csbot.channels")

VERIFY_TOKEN_SETTING = "CSBOT_MESSENGER_VERIFY_TOKEN"
MAX_TEXT = 2000
MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE = 20
MAX_PAYLOAD = 1000
SEND_PATH = "/me/messages"


class MessengerChannel(MetaWebhook):
    """The Messenger adapter (see the module docstring). `verify_token` answers the
    subscription handshake (none: every handshake is refused); `page_token` is the Page
    access token of the Send API calls, sent as a Bearer token."""

    name = "messenger"

    app_secret_setting = "CSBOT_MESSENGER_APP_SECRET"
    verify_token_setting = VERIFY_TOKEN_SETTING

    def __init__(self, app_secret: str, verify_token: str | None = None, page_token: str | None = None):
        super().__init__(app_secret, verify_token, page_token)

    def parse(self, body: bytes) -> list[InboundMessage]:
        data = json_object(self.name, body)
        if data.get("object") != "page":
            log.info("messenger webhook for object %r ignored", data.get("object"))
            return []
        messages: list[InboundMessage] = []
        for entry in objects(data.get("entry")):
            for event in objects(entry.get("messaging")):
                inbound = self._inbound(event)
                if inbound is not None:
                    messages.append(inbound)
        return messages

    def _inbound(self, event: dict[str, Any]) -> InboundMessage | None:
        psid = id_of(obj(event.get("sender")).get("id"))
        page_id = id_of(obj(event.get("recipient")).get("id"))
        found = event_text(event)
        if psid is None or found is None:
            return None
        event_id, text = found
        return InboundMessage(
            platform=self.name,
            event_id=event_id,
            external_id=f"{page_id}:{psid}" if page_id else psid,
            address={"psid": psid, "page_id": page_id},
            text=text,
        )

    def render(self, address: Mapping[str, Any], outgoing: Outgoing) -> list[ApiCall]:
        headers = self.auth_headers()
        buttons = outgoing.buttons
        quick = bool(buttons) and fits_quick_replies(buttons)
        pieces = split_text(outgoing.text if quick else numbered(outgoing.text, buttons), MAX_TEXT)
        calls = []
        for i, piece in enumerate(pieces):
            message: dict[str, Any] = {"text": piece}
            if quick and i == len(pieces) - 1:
                message["quick_replies"] = [_quick_reply(b) for b in buttons]
            payload = {"recipient": {"id": str(address["psid"])}, "messaging_type": "RESPONSE", "message": message}
            calls.append(ApiCall("POST", SEND_PATH, payload, headers))
        return calls

    def outcome(self, status: int, headers: Mapping[str, str], body: bytes) -> SendOutcome:
        """Graph API throttling comes as a 400 that is worth another try (`graph_outcome`)."""
        return graph_outcome(status, headers, body)


def event_text(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(dedupe key, text) of one `messaging[]` event, or None for what is no turn."""
    message = event.get("message")
    if isinstance(message, dict):
        mid = text_of(message.get("mid"))
        if mid is None or message.get("is_echo"):
            return None
        payload = text_of(obj(message.get("quick_reply")).get("payload"))
        text = payload if payload is not None else text_of(message.get("text"))
        return (mid, text) if text is not None else None
    postback = event.get("postback")
    if isinstance(postback, dict):
        text = text_of(postback.get("title")) or text_of(postback.get("payload"))
        if text is None:
            return None
        # recent Graph versions give a postback its own mid; older ones only a timestamp
        mid = text_of(postback.get("mid"))
        if mid is not None:
            return mid, text
        sender, timestamp = id_of(obj(event.get("sender")).get("id")), id_of(event.get("timestamp"))
        return (f"postback:{sender}:{timestamp}", text) if timestamp is not None else None
    return None


def fits_quick_replies(buttons: tuple[str, ...]) -> bool:
    """Whether the buttons can be Messenger quick replies: at most 13, none blank."""
    return len(buttons) <= MAX_QUICK_REPLIES and all(b.strip() for b in buttons)


def _quick_reply(button: str) -> dict[str, str]:
    return {
        "content_type": "text",
        "title": truncate(button, MAX_QUICK_REPLY_TITLE),
        "payload": button[:MAX_PAYLOAD],
    }


def from_config(config: ChannelsConfig) -> MessengerChannel | None:
    """The adapter, or None (off) while CSBOT_MESSENGER_APP_SECRET is unset."""
    app_secret = secret_value(config.messenger_app_secret)
    if app_secret is None:
        return None
    if config.messenger_page_token is None:
        log.warning("messenger is on but CSBOT_MESSENGER_PAGE_TOKEN is unset: replies will be refused by the API")
    return MessengerChannel(
        app_secret=app_secret,
        verify_token=secret_value(config.messenger_verify_token),
        page_token=secret_value(config.messenger_page_token),
    )
