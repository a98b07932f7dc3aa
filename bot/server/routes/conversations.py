"""Conversations: start one, send a message (JSON or streamed over SSE), read the
history, and follow it live (agent messages and handoffs, for after a handoff).

Turns run on the conversation's inference worker; everything else on the store worker.
Whatever can be checked before a stream opens (the body, the text, the rate limit, the
conversation) is answered as a plain 4xx JSON response; an error after that is an
`error` event that ends the stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from bot.contracts import turn_to_dict
from bot.errors import UnknownConversationError
from bot.server import events
from bot.server.errors import to_http
from bot.server.runtime import Runtime, ready_runtime
from bot.server.schemas import (
    CONVERSATION_ID_PATTERN,
    ConversationCreated,
    ConversationIn,
    ConversationOut,
    ErrorOut,
    MessageIn,
    ReplyOut,
    check_length,
)
from bot.server.turns import stream_turn, take_turn
from bot.store import ConversationStore, DialogueState

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])

ConversationId = Annotated[str, Path(pattern=CONVERSATION_ID_PATTERN, description="from POST /api/v1/conversations")]
Ready = Annotated[Runtime, Depends(ready_runtime)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (404, 409, 413, 429, 503)
}
_SSE = {"content": {events.MEDIA_TYPE: {"schema": {"type": "string"}}}}


@router.post("", status_code=201, response_model=ConversationCreated, responses=_ERRORS)
async def create_conversation(rt: Ready, body: ConversationIn | None = None) -> dict:
    channel = body.channel if body is not None else "web"
    conversation_id = await rt.store.call(ConversationStore.create_conversation, channel)
    return {"conversation_id": conversation_id}


@router.post("/{conversation_id}/messages", response_model=ReplyOut, responses=_ERRORS)
async def post_message(conversation_id: ConversationId, body: MessageIn, rt: Ready) -> dict:
    """One turn; the reply object has the fields of `csbot ask`."""
    check_length(body.text, rt.max_message_chars)
    rt.limit_session(conversation_id)
    result = await rt.pool.call(conversation_id, take_turn, conversation_id, body.text, body.client_message_id)
    return turn_to_dict(result)


@router.post("/{conversation_id}/messages/stream", response_class=StreamingResponse,
             responses={200: _SSE, **_ERRORS})
async def stream_message(conversation_id: ConversationId, body: MessageIn, rt: Ready) -> StreamingResponse:
    """The same turn as Server-Sent Events: `typing` {}, then `text` {"text"} per piece,
    then `final` {reply object}; or `error` {"status", "detail"}, which ends the stream."""
    check_length(body.text, rt.max_message_chars)
    rt.limit_session(conversation_id)
    if not await rt.store.call(ConversationStore.conversation_exists, conversation_id):
        raise UnknownConversationError(conversation_id)
    return StreamingResponse(_reply_events(rt, conversation_id, body), media_type=events.MEDIA_TYPE,
                             headers=events.HEADERS)


async def _reply_events(rt: Runtime, conversation_id: str, body: MessageIn) -> AsyncIterator[bytes]:
    yield events.event("typing", {})
    delay = rt.settings.stream_piece_delay_ms / 1000
    sent_text = False
    try:
        async for item in rt.pool.stream(conversation_id, stream_turn, conversation_id, body.text,
                                         body.client_message_id):
            if isinstance(item, str):
                if delay and sent_text:
                    await asyncio.sleep(delay)
                sent_text = True
                yield events.event("text", {"text": item})
            else:
                yield events.event("final", turn_to_dict(item))
    except Exception as e:  # noqa: BLE001 - the stream is open: the error becomes its last event
        error = to_http(e)
        yield events.event("error", {"status": error.status, "detail": error.detail})


@router.get("/{conversation_id}", response_model=ConversationOut, responses=_ERRORS)
async def get_conversation(conversation_id: ConversationId, rt: Ready) -> dict:
    """The history as the store holds it, for a widget that reloads."""
    return await rt.store.call(_history, conversation_id)


def _history(store: ConversationStore, conversation_id: str) -> dict:
    conversation = store.conversation(conversation_id)
    ratings = store.latest_ratings(conversation_id)
    messages = [
        {
            "message_id": m["id"],
            "role": m["role"],
            "text": m["text"],
            "created_at": m["created_at"],
            "action": m["action"],
            "buttons": m.get("buttons") or [],
            "feedback": ratings.get(m["id"]),
        }
        for m in store.messages(conversation_id)
    ]
    handed_off = conversation["status"] == "handoff" or DialogueState.from_json(conversation["state"]).handed_off
    return {
        "conversation_id": conversation["id"],
        "channel": conversation["channel"],
        "created_at": conversation["created_at"],
        "handed_off": handed_off,
        "messages": messages,
    }


@router.get("/{conversation_id}/events", response_class=StreamingResponse, responses={200: _SSE, **_ERRORS})
async def conversation_events(
    conversation_id: ConversationId,
    rt: Ready,
    after: Annotated[int | None, Query(ge=0, description="only events after this message id")] = None,
    last_event_id: Annotated[str | None, Header(description="set by EventSource when it reconnects")] = None,
) -> StreamingResponse:
    """Live events of a conversation, read from the store (so any replica can serve
    them): `agent_message` {"message_id", "text", "created_at"} and `handoff` {"reason",
    "message_id"}, each with `id:` = its message id, after the `Last-Event-ID` header or
    `?after=`; a `: ping` comment every CSBOT_EVENTS_PING_SECONDS of silence. The stream
    ends when the server shuts down; reconnect with Last-Event-ID."""
    cursor = max(after or 0, _last_event_id(last_event_id))
    if not await rt.store.call(ConversationStore.conversation_exists, conversation_id):
        raise UnknownConversationError(conversation_id)
    return StreamingResponse(_live_events(rt, conversation_id, cursor), media_type=events.MEDIA_TYPE,
                             headers=events.HEADERS)


def _last_event_id(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not value.isascii() or not value.isdigit():
        raise RequestValidationError([{
            "type": "int_parsing", "loc": ("header", "last-event-id"),
            "msg": f"Last-Event-ID must be a message id (a whole number), got {value[:40]!r}",
        }])
    return int(value)


async def _live_events(rt: Runtime, conversation_id: str, cursor: int) -> AsyncIterator[bytes]:
    poll, ping = rt.settings.events_poll_seconds, rt.settings.events_ping_seconds
    quiet_since = time.monotonic()
    while not rt.closing.is_set():  # the server is shutting down: end, the client reconnects
        found = await rt.store.call(_events_after, conversation_id, cursor)
        for name, message_id, data in found:
            yield events.event(name, data, event_id=message_id)
            cursor = message_id
        now = time.monotonic()
        if found:
            quiet_since = now
        elif now - quiet_since >= ping:
            yield events.comment("ping")
            quiet_since = now
        await asyncio.sleep(poll)


def _events_after(store: ConversationStore, conversation_id: str, cursor: int) -> list[tuple[str, int, dict]]:
    """Agent messages and handoffs (keyed by the bot message that announced them) with a
    message id above `cursor`, in message order."""
    found = [
        ("agent_message", m["id"], {"message_id": m["id"], "text": m["text"], "created_at": m["created_at"]})
        for m in store.agent_messages_after(conversation_id, cursor)
    ]
    found += [
        ("handoff", h["message_id"], {"reason": h["reason"], "message_id": h["message_id"]})
        for h in store.handoffs(conversation_id)
        if h["message_id"] is not None and h["message_id"] > cursor
    ]
    return sorted(found, key=lambda item: item[1])
