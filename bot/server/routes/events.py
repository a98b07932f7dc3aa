"""A conversation's live events, for after a handoff: the agent's messages and the
handoff itself, as Server-Sent Events read from the store (so any replica can serve
them). The conversation's access token is required, as for its history.

The streams are fed by the runtime's one `EventWatcher` (bot/server/watcher.py), which
also bounds how many a client, and the server, may hold open (429 past that).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from bot.server import events
from bot.server.access import AuthorizedConversation, Ready
from bot.server.runtime import Runtime
from bot.server.schemas import ErrorOut
from bot.server.watcher import Subscription

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (404, 429, 503)}
_SSE = {"content": {events.MEDIA_TYPE: {"schema": {"type": "string"}}}}


@router.get("/{conversation_id}/events", response_class=StreamingResponse, responses={200: _SSE, **_ERRORS})
async def conversation_events(
    conversation_id: AuthorizedConversation,
    rt: Ready,
    request: Request,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="only events after this message id")] = None,
    last_event_id: Annotated[str | None, Header(description="set by EventSource when it reconnects")] = None,
) -> StreamingResponse:
    """Live events of a conversation, read from the store (so any replica can serve
    them): `agent_message` {"message_id", "text", "created_at"} and `handoff` {"reason",
    "message_id"}, each with `id:` = its message id, after the `Last-Event-ID` header or
    `?after=`; a `: ping` comment every CSBOT_EVENTS_PING_SECONDS of silence. The stream
    ends when the server shuts down; reconnect with Last-Event-ID. A client may hold
    CSBOT_MAX_EVENT_STREAMS_PER_CLIENT streams at once (429 past that)."""
    cursor = max(after or 0, _last_event_id(last_event_id))
    subscription = rt.watcher.subscribe(conversation_id, rt.clients.key(request.scope), cursor)
    stream = _live_events(rt, subscription)
    rt.watcher.free_when_collected(stream, subscription)  # in case it never starts
    return StreamingResponse(stream, media_type=events.MEDIA_TYPE, headers=events.HEADERS)


def _last_event_id(value: str | None) -> int:
    if value is None or value == "":
        return 0
    # at most 18 digits: message ids fit SQLite's 64-bit integers, and a longer one is junk
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise RequestValidationError(
            [
                {
                    "type": "int_parsing",
                    "loc": ("header", "last-event-id"),
                    "msg": f"Last-Event-ID must be a message id (a whole number), got {value[:40]!r}",
                }
            ]
        )
    return int(value)


async def _live_events(rt: Runtime, subscription: Subscription) -> AsyncIterator[bytes]:
    try:
        while not rt.closing.is_set():  # the server is shutting down: end, the client reconnects
            found = await subscription.next(rt.settings.server.events_ping_seconds)
            if found is None:
                return
            if not found:
                yield events.comment("ping")
            for name, message_id, data in found:
                yield events.event(name, data, event_id=message_id)
    finally:
        rt.watcher.unsubscribe(subscription)
