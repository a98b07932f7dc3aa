"""The server's own typed errors, and the one table that turns any error into an HTTP
status and a `detail` that says what was wrong and what to do.

Used by the exception handlers (app.py), the middleware that answers before routing
(limits.py) and the `error` event of a stream already open (routes/conversations.py), so
one error reads the same wherever it surfaces.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from starlette.responses import JSONResponse

from bot.errors import CsbotError, InvalidMessageError, UnknownConversationError
from bot.store import NotABotMessageError, UnknownMessageError

log = logging.getLogger("csbot.server")


class ServerError(CsbotError):
    """Base class of errors raised by the HTTP layer itself."""


class NotReadyError(ServerError):
    def __init__(self, state: str, reason: str | None = None):
        self.state, self.reason = state, reason
        if state == "failed":
            message = f"the assistant failed to load: {reason}; fix it and restart the server"
        else:
            message = "the assistant is still loading; retry in a few seconds (GET /readyz says when it is ready)"
        super().__init__(message)


class RateLimitedError(ServerError):
    def __init__(self, scope: str, per_minute: int, retry_after: float):
        self.scope, self.per_minute = scope, per_minute
        self.retry_after = max(1, math.ceil(retry_after))
        what = {"ip": "requests from this address", "session": "messages in this conversation"}[scope]
        super().__init__(
            f"too many {what}: the limit is {per_minute} a minute; retry after {self.retry_after} s"
        )


class BodyTooLargeError(ServerError):
    def __init__(self, limit: int, size: int | None = None):
        self.limit, self.size = limit, size
        got = f"{size} bytes" if size is not None else "more than that"
        super().__init__(
            f"request body is {got}; the limit is {limit} bytes (CSBOT_MAX_BODY_BYTES). "
            "Send one message at a time; a message's text has its own limit in characters"
        )


class ClientMessageConflictError(ServerError):
    """The client re-used a `client_message_id` for a different text."""

    def __init__(self, client_message_id: str):
        self.client_message_id = client_message_id
        super().__init__(
            f"client_message_id {client_message_id!r} was already used in this conversation for a "
            "different text; use a new id for each new message (re-send the same text to get its reply)"
        )


@dataclass(frozen=True)
class HttpError:
    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


def to_http(exc: BaseException) -> HttpError:
    """The status, detail and headers for an error. Unknown errors are 500 and logged,
    without their text (which may hold internals)."""
    if isinstance(exc, UnknownConversationError):
        return HttpError(404, f"unknown conversation id {exc.conversation_id!r}; "
                              "start a conversation with POST /api/v1/conversations")
    if isinstance(exc, UnknownMessageError):
        return HttpError(404, f"unknown message id {exc.message_id}; rate a bot reply by the "
                              "message_id its reply object carries")
    if isinstance(exc, NotABotMessageError):
        return HttpError(422, str(exc))
    if isinstance(exc, InvalidMessageError):
        return HttpError(422, str(exc))
    if isinstance(exc, ClientMessageConflictError):
        return HttpError(409, str(exc))
    if isinstance(exc, RateLimitedError):
        return HttpError(429, str(exc), {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, BodyTooLargeError):
        return HttpError(413, str(exc))
    if isinstance(exc, NotReadyError):
        return HttpError(503, str(exc), {"Retry-After": "5"} if exc.state == "loading" else {})
    log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
    return HttpError(500, "internal error; the server log has the details")


def error_response(exc: BaseException) -> JSONResponse:
    """The JSON response `{"detail": ...}` for an error, with its headers (Retry-After)."""
    error = to_http(exc)
    return JSONResponse({"detail": error.detail}, status_code=error.status, headers=error.headers)
