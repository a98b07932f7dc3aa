"""What WhatsApp Cloud API and Messenger webhooks share, both being Meta's Graph API
webhooks: the `hub.verify_token` subscription handshake and the `X-Hub-Signature-256`
check over the raw body.

Meta signs every POST with the app secret (`sha256=` + hex HMAC-SHA256 of the exact
bytes received, so the body must never be re-serialised before the check) and signs no
GET: the subscription GET proves itself only by echoing the verify token we gave Meta.
Both comparisons are constant-time, so the secret cannot be guessed byte by byte from
response times. Both send through the Graph API, whose throttling answers look like
permanent failures unless their error object is read (`graph_outcome`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from bot.channels.base import BadPayloadError, SendOutcome, SignatureError, WebhookResult, classify_response

SIGNATURE_HEADER = "x-hub-signature-256"
SIGNATURE_PREFIX = "sha256="


def hub_signature(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends with `body` (also what tests sign with)."""
    return SIGNATURE_PREFIX + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_hub_signature(platform: str, app_secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise `SignatureError` unless `headers` (lower-case names) carry the signature of
    `body` under `app_secret`."""
    given = headers.get(SIGNATURE_HEADER)
    if not given:
        raise SignatureError(
            f"{platform} webhook without X-Hub-Signature-256: refused (is the app secret set in Meta?)"
        )
    if not given.startswith(SIGNATURE_PREFIX):
        raise SignatureError(f"{platform} webhook with a malformed X-Hub-Signature-256 (expected sha256=<hex>)")
    expected = hub_signature(app_secret, body)
    if not hmac.compare_digest(given.strip().lower().encode("ascii", "replace"), expected.encode("ascii")):
        raise SignatureError(
            f"{platform} webhook signature does not match: check that the app secret is the Meta app's own"
        )


def hub_challenge(
    platform: str, verify_token: str | None, setting: str, query: Mapping[str, str]
) -> WebhookResult | None:
    """The answer to Meta's subscription GET (`hub.mode=subscribe`, `hub.verify_token`,
    `hub.challenge`): the challenge as plain text when the token matches; `SignatureError`
    when it does not (or none is configured: an empty token must never match);
    `BadPayloadError` for a handshake without a challenge or another mode; None when the
    query is no handshake at all."""
    mode = query.get("hub.mode")
    if mode is None and "hub.verify_token" not in query and "hub.challenge" not in query:
        return None
    if mode != "subscribe":
        raise BadPayloadError(f"{platform} handshake with hub.mode={mode!r}; Meta sends hub.mode=subscribe")
    if not verify_token:
        raise SignatureError(f"{platform} handshake refused: set {setting} to the verify token given to Meta")
    given = query.get("hub.verify_token", "")
    if not hmac.compare_digest(given.encode("utf-8"), verify_token.encode("utf-8")):
        raise SignatureError(f"{platform} handshake with a wrong hub.verify_token: it must equal {setting}")
    challenge = query.get("hub.challenge")
    if challenge is None:
        raise BadPayloadError(f"{platform} handshake without hub.challenge: nothing to echo")
    return WebhookResult(body=challenge, status=200, media_type="text/plain")


# Graph API error codes that mean "too many calls, or a passing failure: try again later"
# (API throttling 4/17/32/613, temporary 1/2, page or WhatsApp rate limits 80007/130429/131056)
_RETRYABLE_GRAPH_CODES = frozenset({1, 2, 4, 17, 32, 613, 80007, 130429, 131056})


def graph_outcome(status: int, headers: Mapping[str, str], body: bytes) -> SendOutcome:
    """What a Graph API answer means. Meta answers throttling and passing failures with a
    400 whose error object says so (`is_transient`, or a rate-limit code), which the
    plain reading would give up on for good; those are retried instead."""
    result = classify_response(status, headers, body)
    if result.ok or result.retry:
        return result
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return result
    if not isinstance(error, dict):
        return result
    if error.get("is_transient") is True or error.get("code") in _RETRYABLE_GRAPH_CODES:
        return SendOutcome(ok=False, retry=True, error=result.error, retry_after=result.retry_after)
    return result


class MetaWebhook:
    """What a Meta platform's adapter (WhatsApp, Messenger) does the same way: the app
    secret that signs every request, the verify token of the subscription handshake, and
    the Bearer token of its API calls. Subclasses name the platform and its settings."""

    name: str
    app_secret_setting: str
    verify_token_setting: str

    def __init__(self, app_secret: str, verify_token: str | None, api_token: str | None):
        if not app_secret:
            raise ValueError(f"{type(self).__name__} needs the Meta app secret ({self.app_secret_setting})")
        self._app_secret, self._verify_token, self._api_token = app_secret, verify_token, api_token

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        verify_hub_signature(self.name, self._app_secret, headers, body)

    def handshake(self, method: str, query: Mapping[str, str], body: bytes) -> WebhookResult | None:
        if method.upper() != "GET":
            return None
        return hub_challenge(self.name, self._verify_token, self.verify_token_setting, query)

    def auth_headers(self) -> dict[str, str]:
        """The Bearer token of the API calls (none configured: no header)."""
        return {"Authorization": f"Bearer {self._api_token}"} if self._api_token else {}
