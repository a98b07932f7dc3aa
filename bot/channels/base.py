"""The one contract every messaging platform implements, and the channels' errors.

A platform adapter is pure: it checks a webhook request's signature, answers the
platform's handshake, turns the request body into `InboundMessage`s and a reply into
`ApiCall`s. It never does I/O itself, so that the webhook route, the inbox/outbox worker
and the tests share one adapter and the retries, dedupe and persistence live in one
place (`bot/channels/worker.py`) for every platform.

Each platform module (`slack.py`, `telegram.py`, `whatsapp.py`, `messenger.py`) exposes
`from_config(config: bot.channels.config.ChannelsConfig) -> Channel | None`: its adapter
built from the settings' `channels` section, None when its webhook secret is unset (the
channel is off). `bot/channels/registry.py` calls it for every platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from bot.errors import CsbotError
from retrieval.text import without_control_characters

OutgoingKind = Literal["reply", "agent", "handoff", "notice"]


class ChannelError(CsbotError):
    """Base class for the messaging channels' errors."""


class SignatureError(ChannelError):
    """A webhook request with a bad, missing or stale signature (HTTP 401): refused,
    logged, never processed."""


class BadPayloadError(ChannelError):
    """A webhook body that is not the JSON the platform sends (HTTP 400)."""


class ChannelOffError(ChannelError):
    """A webhook for a platform whose secret is not configured (HTTP 404): a channel
    without its secret is off, never open."""

    def __init__(self, platform: str, setting: str):
        self.platform, self.setting = platform, setting
        super().__init__(f"the {platform} channel is off: set {setting} to turn it on")


@dataclass(frozen=True)
class InboundMessage:
    """One customer message from a platform.

    `event_id` is the platform's own id for the delivery (dedupe); `external_id` names
    who or where the customer talks (a user, a chat, a thread) and maps to one csbot
    conversation; `address` is what a reply needs (chat id, thread, phone number id...).
    """

    platform: str
    event_id: str
    external_id: str
    address: dict[str, Any]
    text: str

    def __post_init__(self) -> None:
        # a platform's JSON string may hold any code point, NUL included; the text is stored
        # before its turn runs (PostgreSQL refuses NUL in text), so control characters other
        # than newlines and tabs go here, as the turn's own validation would drop them
        object.__setattr__(self, "text", without_control_characters(self.text))


@dataclass(frozen=True)
class Outgoing:
    """A message for the customer: the bot's reply, an agent's message, the handoff
    notice or a system notice; `buttons` are quick replies (the platform's buttons
    where it has them, numbered text otherwise)."""

    text: str
    buttons: tuple[str, ...] = ()
    kind: OutgoingKind = "reply"


@dataclass(frozen=True)
class ApiCall:
    """One HTTP request to the platform's API; `path` is relative to the API base URL
    from the settings (so that tests point it at a fake platform on 127.0.0.1)."""

    method: str
    path: str
    json: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookResult:
    """What the webhook answers when the request is a handshake rather than messages
    (Slack's url_verification challenge, Meta's hub.challenge)."""

    body: str | dict[str, Any]
    status: int = 200
    media_type: str = "text/plain"


@dataclass(frozen=True)
class SendOutcome:
    """What a platform's answer to an `ApiCall` means: delivered, worth another try
    (after `retry_after` seconds when the platform said), or failed for good."""

    ok: bool
    retry: bool = False
    error: str = ""
    retry_after: float | None = None


def classify_response(status: int, headers: Mapping[str, str], body: bytes) -> SendOutcome:
    """The usual reading of an API answer: 2xx delivered; 429 and 5xx retried (honouring
    Retry-After, in seconds); anything else failed for good. A platform whose API answers
    failures with 200 gives its adapter an `outcome` method with the same signature,
    which the worker uses instead."""
    if 200 <= status < 300:
        return SendOutcome(ok=True)
    error = f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}"
    if status == 429 or status >= 500:
        return SendOutcome(ok=False, retry=True, error=error, retry_after=retry_after(headers))
    return SendOutcome(ok=False, error=error)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by these platforms)."""
    value = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@runtime_checkable
class Channel(Protocol):
    """A messaging platform adapter (see the module docstring)."""

    name: str

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Raise `SignatureError` unless the request is signed by the platform (within
        the replay window where the platform signs a timestamp). `headers` keys are
        lower-case; `body` is the raw bytes; `now` is the Unix time (injected)."""
        ...

    def handshake(self, method: str, query: Mapping[str, str], body: bytes) -> WebhookResult | None:
        """The answer to a subscription handshake, or None when the request is not one.

        The route calls it for every GET before anything else (Meta signs no GET: a
        wrong `hub.verify_token` raises `SignatureError`; a GET that is no handshake
        answers 400), and for every POST after `verify` and before `parse`."""
        ...

    def parse(self, body: bytes) -> list[InboundMessage]:
        """The customer messages in a verified request: `BadPayloadError` on malformed
        JSON; event types it does not handle (bots, edits, receipts) give []."""
        ...

    def render(self, address: Mapping[str, Any], outgoing: Outgoing) -> list[ApiCall]:
        """The API calls that deliver `outgoing` to `address` (from an InboundMessage)."""
        ...


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names in lower case, as `Channel.verify` receives them."""
    return {k.lower(): v for k, v in headers.items()}


def numbered(text: str, buttons: tuple[str, ...]) -> str:
    """Quick replies as numbered text, for platforms (or cases) without buttons."""
    if not buttons:
        return text
    lines = [f"{i}. {b}" for i, b in enumerate(buttons, 1)]
    return text + "\n\n" + "\n".join(lines)


__all__ = [
    "ApiCall",
    "BadPayloadError",
    "Channel",
    "ChannelError",
    "ChannelOffError",
    "InboundMessage",
    "Outgoing",
    "OutgoingKind",
    "SendOutcome",
    "SignatureError",
    "WebhookResult",
    "classify_response",
    "lower_headers",
    "numbered",
    "retry_after",
]
