"""Conversations: start one, send a message (JSON or streamed over SSE), read the
history a page at a time, and erase it.

Starting a conversation returns its access token; every other call sends it in the
`X-Conversation-Token` header (see bot/server/access.py), and without it a conversation
does not exist. Turns run on the conversation's inference worker, under the
conversation's lock when several replicas share the store (`bot.server.conversation_lock`:
the retried-message check runs inside it); everything else on the store worker.
Whatever can be checked before a stream opens (the body, the text, the rate limit, the
token) is answered as a plain 4xx JSON response; an error after that (a busy or
unreachable conversation lock among them) is an `error` event that ends the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from bot.privacy import forget_conversations
from bot.server import events
from bot.server.access import AuthorizedConversation, Ready, RoomForATurn, new_access_token, token_hash
from bot.server.errors import to_http
from bot.server.runtime import Runtime
from bot.server.schemas import (
    ConversationCreated,
    ConversationIn,
    ConversationOut,
    ErrorOut,
    MessageIn,
    ReplyOut,
    check_length,
)
from bot.server.turns import public_turn, stream_public_turn
from bot.store import ConversationStore

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (404, 409, 413, 429, 503)}
_SSE = {"content": {events.MEDIA_TYPE: {"schema": {"type": "string"}}}}


@router.post("", status_code=201, response_model=ConversationCreated, responses=_ERRORS)
async def create_conversation(rt: Ready, body: ConversationIn | None = None) -> dict:
    """A new conversation and its access token (returned only here)."""
    channel = body.channel if body is not None else "web"
    token = new_access_token()
    conversation_id = await rt.store.call(
        lambda store: store.create_conversation(channel, token_hash=token_hash(token))
    )
    return {"conversation_id": conversation_id, "access_token": token}


@router.post("/{conversation_id}/messages", response_model=ReplyOut, responses=_ERRORS)
async def post_message(
    _room: RoomForATurn, conversation_id: AuthorizedConversation, body: MessageIn, rt: Ready
) -> dict:
    """One turn: the customer's message in, the bot's reply out."""
    check_length(body.text, rt.max_message_chars)
    rt.limit_session(conversation_id)
    return await rt.pool.call(conversation_id, public_turn, conversation_id, body.text, body.client_message_id)


@router.post("/{conversation_id}/messages/stream", response_class=StreamingResponse, responses={200: _SSE, **_ERRORS})
async def stream_message(
    _room: RoomForATurn, conversation_id: AuthorizedConversation, body: MessageIn, rt: Ready
) -> StreamingResponse:
    """The same turn as Server-Sent Events: `typing` {}, then `text` {"text"} per piece,
    then `final` {reply object}; or `error` {"status", "code", "detail"}, which ends the stream."""
    check_length(body.text, rt.max_message_chars)
    rt.limit_session(conversation_id)
    # the turn takes its place in the queue now, so a full queue is a plain 503, not a stream
    turn = rt.pool.stream(conversation_id, stream_public_turn, conversation_id, body.text, body.client_message_id)
    return StreamingResponse(_reply_events(rt, turn), media_type=events.MEDIA_TYPE, headers=events.HEADERS)


async def _reply_events(rt: Runtime, turn: AsyncGenerator[str | dict[str, Any], None]) -> AsyncIterator[bytes]:
    yield events.event("typing", {})
    delay = rt.settings.server.stream_piece_delay_ms / 1000
    sent_text = False
    try:
        # aclosing: a client that leaves stops the turn's stream at once, not when collected
        async with aclosing(turn):
            async for item in turn:
                if isinstance(item, str):
                    if delay and sent_text:
                        await asyncio.sleep(delay)
                    sent_text = True
                    yield events.event("text", {"text": item})
                else:
                    yield events.event("final", item)
    except Exception as e:  # noqa: BLE001 - the stream is open: the error becomes its last event
        error = to_http(e)
        yield events.event("error", {"status": error.status, "code": error.code, "detail": error.detail})


@router.get("/{conversation_id}", response_model=ConversationOut, responses=_ERRORS)
async def get_conversation(
    conversation_id: AuthorizedConversation,
    rt: Ready,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="only messages older than this message_id")
    ] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=500, description="messages per page [default and most: CSBOT_HISTORY_PAGE_SIZE]")
    ] = None,
) -> dict:
    """The history, newest page first (messages oldest first within the page), for a
    widget that reloads; page back with `before`."""
    size = min(limit or rt.settings.server.history_page_size, rt.settings.server.history_page_size)
    return await rt.store.call(_history, conversation_id, before, size)


def _history(store: ConversationStore, conversation_id: str, before: int | None, limit: int) -> dict:
    conversation = store.conversation(conversation_id)
    ratings = store.latest_ratings(conversation_id)
    page, has_more = store.messages_page(conversation_id, limit=limit, before=before)
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
        for m in page
    ]
    # waiting for a human or with one: the widget shows the handoff banner after a reload
    handed_off = conversation["handling"] in ("pending", "open")
    return {
        "conversation_id": conversation["id"],
        "channel": conversation["channel"],
        "created_at": conversation["created_at"],
        "handed_off": handed_off,
        "messages": messages,
        "has_more": has_more,
    }


@router.delete("/{conversation_id}", status_code=204, response_class=Response, responses=_ERRORS)
async def delete_conversation(conversation_id: AuthorizedConversation, rt: Ready) -> Response:
    """Erase the conversation for good: its messages, ratings, CSAT and handoffs, and the
    training pairs built from it in the workspace (what `csbot forget` does; logged by id
    and counts, never by content)."""
    workspace = Path(rt.settings.workspace)
    await rt.store.call(
        lambda store: forget_conversations(store, workspace, [conversation_id], "the customer's request")
    )
    return Response(status_code=204)
