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
from typing import Any

from starlette.responses import JSONResponse

from bot.agents.errors import (
    ConversationHeldError,
    ConversationResolvedError,
    CsrfError,
    DuplicateAgentError,
    ForbiddenError,
    InvalidAgentInputError,
    InvalidTransitionError,
    NotSignedInError,
    SignInFailedError,
    SignInThrottledError,
    UnknownAgentError,
    UnknownSuggestionError,
)
from bot.channels.base import BadPayloadError, ChannelOffError, SignatureError
from bot.errors import CsbotError, InvalidMessageError, UnknownConversationError
from bot.store import NotABotMessageError, StoreUnavailableError, UnknownMessageError
from finetune.registry import (
    BrokenPromotionError,
    CorruptEntryError,
    DuplicateModelError,
    NotAwaitingApprovalError,
    NothingToRollBackError,
    RegistryError,
    UnknownModelError,
)

log = logging.getLogger("csbot.server")


# what a client is told to wait when the store is unreachable (a database restart takes seconds)
STORE_RETRY_AFTER_S = 2


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
        super().__init__(f"too many {what}: the limit is {per_minute} a minute; retry after {self.retry_after} s")


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


class TooManyStreamsError(ServerError):
    """A client (or the whole server) holds as many live event streams as it may."""

    def __init__(self, scope: str, limit: int):
        self.scope, self.limit = scope, limit
        whose = "from this address" if scope == "client" else "on this server"
        super().__init__(
            f"too many open event streams {whose} (the limit is {limit}); close another tab or "
            "retry after a few seconds"
        )


class QueueFullError(ServerError):
    """More turns wait for an inference worker than the queue may hold."""

    def __init__(self, limit: int, retry_after: float = 2.0):
        self.limit, self.retry_after = limit, max(1, math.ceil(retry_after))
        super().__init__(f"the assistant is busy ({limit} messages are waiting); retry after {self.retry_after} s")


class TurnDeadlineError(ServerError):
    """A turn waited past its deadline before a worker could take it, and was dropped."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(
            f"the assistant could not take this message within {seconds:g} s; nothing was stored, send it again"
        )


class ConversationBusyError(ServerError):
    """Another replica held the conversation's lock (it was taking a turn of it) for as
    long as this turn could wait; this turn did not run."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(
            f"another message of this conversation was still being answered after {seconds:g} s; "
            "nothing was stored for this one, send it again (with the same client_message_id)"
        )


class LockUnavailableError(ServerError):
    """The shared lock store (Redis) that orders a conversation's turns across replicas
    could not be reached; the turn did not run, since running it unordered could interleave
    it with another replica's turn of the same conversation."""

    def __init__(self, reason: str, retry_after: float = 5.0):
        self.reason, self.retry_after = reason, max(1, math.ceil(retry_after))
        super().__init__(
            f"the conversation lock store (CSBOT_REDIS_URL) is unreachable ({reason}); nothing was stored, "
            f"send the message again after {self.retry_after} s"
        )


class UnknownPanelConversationError(ServerError):
    """The agent panel asked for a conversation the store does not have."""

    def __init__(self, conversation_id: str):
        self.conversation_id = conversation_id
        super().__init__(f"no conversation {conversation_id!r}; the queue (GET /api/v1/agent/queue) lists them")


@dataclass(frozen=True)
class HttpError:
    status: int
    code: str  # stable, machine-readable: clients branch on it, never on the text
    detail: str
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # more fields of the body (the holder's name)


def to_http(exc: BaseException) -> HttpError:
    """The status, stable code, detail and headers for an error. Unknown errors are 500
    and logged, without their text (which may hold internals such as paths)."""
    if isinstance(exc, UnknownConversationError):
        # also what a wrong or missing access token gets: nobody learns that an id exists
        return HttpError(
            404,
            "conversation_not_found",
            "unknown conversation, or a missing or wrong "
            "X-Conversation-Token; start one with POST /api/v1/conversations",
        )
    if isinstance(exc, UnknownMessageError):
        return HttpError(
            404,
            "message_not_found",
            "no such bot reply in this conversation; rate a reply by the message_id its reply object carries",
        )
    if isinstance(exc, NotABotMessageError):
        return HttpError(
            404,
            "message_not_found",
            "no such bot reply in this conversation; rate a reply by the message_id its reply object carries",
        )
    if isinstance(exc, InvalidMessageError):
        return HttpError(422, "invalid_message", str(exc))
    if isinstance(exc, ClientMessageConflictError):
        return HttpError(409, "client_message_id_conflict", str(exc))
    if isinstance(exc, RateLimitedError):
        return HttpError(429, "rate_limited", str(exc), {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, TooManyStreamsError):
        return HttpError(429, "too_many_streams", str(exc), {"Retry-After": "5"})
    if isinstance(exc, BodyTooLargeError):
        return HttpError(413, "body_too_large", str(exc))
    if isinstance(exc, QueueFullError):
        return HttpError(503, "busy", str(exc), {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, TurnDeadlineError):
        return HttpError(503, "turn_deadline", str(exc), {"Retry-After": "1"})
    if isinstance(exc, ConversationBusyError):
        return HttpError(503, "conversation_busy", str(exc), {"Retry-After": "1"})
    if isinstance(exc, LockUnavailableError):
        # the reason (the connection error) stays in the server log: it may name hosts
        detail = f"the service is briefly unable to take messages; nothing was stored, retry after {exc.retry_after} s"
        return HttpError(503, "lock_unavailable", detail, {"Retry-After": str(exc.retry_after)})
    if isinstance(exc, StoreUnavailableError):
        # the database restarts or its write lock stays taken: nothing was stored, and the
        # next request reconnects. The reason stays in the server log: it names hosts.
        log.warning("store unavailable: %s", exc)
        detail = "the service is briefly unable to store messages; nothing was stored, retry in a few seconds"
        return HttpError(503, "store_unavailable", detail, {"Retry-After": str(STORE_RETRY_AFTER_S)})
    agent_panel = _agent_panel_error(exc)
    if agent_panel is not None:
        return agent_panel
    channel = _channel_error(exc)
    if channel is not None:
        return channel
    if isinstance(exc, NotReadyError):
        if exc.state == "loading":
            return HttpError(503, "loading", str(exc), {"Retry-After": "5"})
        # the reason stays in the server log: it may name files and paths
        return HttpError(503, "failed_to_load", "the assistant failed to load; the server log says why")
    log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
    return HttpError(500, "internal_error", "internal error; the server log has the details")


def _agent_panel_error(exc: BaseException) -> HttpError | None:
    """The agent panel's errors (bot.agents) and the model registry's (its admin routes),
    or None for any other error."""
    if isinstance(exc, UnknownPanelConversationError):
        return HttpError(404, "not_found", str(exc))
    if isinstance(exc, NotSignedInError):
        return HttpError(401, "not_signed_in", str(exc), extra={"reason": exc.reason})
    if isinstance(exc, SignInFailedError):
        return HttpError(401, "sign_in_failed", str(exc))
    if isinstance(exc, SignInThrottledError):
        retry_after = str(max(1, exc.retry_after))
        return HttpError(429, "sign_in_throttled", str(exc), {"Retry-After": retry_after})
    if isinstance(exc, CsrfError):
        return HttpError(403, "csrf_failed", str(exc))
    if isinstance(exc, ForbiddenError):
        return HttpError(403, "forbidden", str(exc))
    if isinstance(exc, ConversationHeldError):
        return HttpError(409, "conversation_held", str(exc), extra={"holder": exc.holder})
    if isinstance(exc, ConversationResolvedError):
        return HttpError(409, "conversation_resolved", str(exc))
    if isinstance(exc, (InvalidTransitionError, NothingToRollBackError, NotAwaitingApprovalError)):
        return HttpError(409, "invalid_transition", str(exc))
    if isinstance(exc, (UnknownAgentError, UnknownSuggestionError, UnknownModelError)):
        return HttpError(404, "not_found", str(exc))
    if isinstance(exc, DuplicateAgentError):
        return HttpError(409, "agent_exists", str(exc))
    if isinstance(exc, InvalidAgentInputError):
        return HttpError(422, "invalid_input", str(exc))
    if isinstance(exc, DuplicateModelError):
        return HttpError(409, "model_exists", str(exc))
    if isinstance(exc, (BrokenPromotionError, CorruptEntryError)):
        return HttpError(409, "model_unusable", str(exc))
    if isinstance(exc, RegistryError):
        return HttpError(409, "model_registry_refused", str(exc))
    return None


def _channel_error(exc: BaseException) -> HttpError | None:
    """The messaging platforms' webhook errors (bot.channels), or None for any other."""
    if isinstance(exc, SignatureError):
        return HttpError(401, "bad_signature", str(exc))
    if isinstance(exc, ChannelOffError):
        return HttpError(404, "channel_off", str(exc))
    if isinstance(exc, BadPayloadError):
        return HttpError(400, "bad_payload", str(exc))
    return None


def error_response(exc: BaseException) -> JSONResponse:
    """The JSON response `{"code": ..., "detail": ...}` (and any further fields of the
    error, such as `holder` or `reason`) for an error, with its headers (Retry-After)."""
    error = to_http(exc)
    body = {"code": error.code, "detail": error.detail, **error.extra}
    return JSONResponse(body, status_code=error.status, headers=error.headers)
