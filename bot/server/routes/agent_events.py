"""The panel's live view, as Server-Sent Events read from the store (so any replica can
serve it): `queue` {"counts", "signature"} whenever the queue changes (the page then
fetches GET /queue), `message` {message fields} for each new message of the watched
conversation, with `id:` = its message id, and a `: ping` comment after
CSBOT_EVENTS_PING_SECONDS of silence.

Each stream reads the store every CSBOT_EVENTS_POLL_SECONDS on the store worker. Agents
are few and signed in, and each may hold CSBOT_MAX_EVENT_STREAMS_PER_CLIENT streams at
once (429 past that). A stream ends when the server shuts down and when its session
ends (signed out, expired, or its agent disabled): the page then reconnects, or signs in.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from bot.agents.clock import Clock, parse_timestamp
from bot.agents.sessions import token_hash
from bot.server import events
from bot.server.agent_auth import AgentServices, Ready, SessionCookie, SignedIn, agent_clock, run_agents
from bot.server.errors import TooManyStreamsError
from bot.server.routes.agent_conversations import (
    add_source_details,
    agent_names,
    on_conversation,
    panel_message,
)
from bot.server.routes.events import _last_event_id
from bot.server.runtime import Runtime
from bot.server.schemas import CONVERSATION_ID_PATTERN, ErrorOut
from bot.store.records import decoded_message

log = logging.getLogger("csbot.server")

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 404, 429, 503)}
_SSE = {"content": {events.MEDIA_TYPE: {"schema": {"type": "string"}}}}
# messages sent in one poll at most; the rest come with the next poll
_MESSAGES_PER_POLL = 200


@dataclass
class _Watch:
    """What one stream watches and has sent so far."""

    session_hash: str
    idle: timedelta  # a session unused this long has ended (CSBOT_AGENT_IDLE_MINUTES)
    conversation_id: str | None
    cursor: int
    signature: str | None = None


@router.get("/events", response_class=StreamingResponse, responses={200: _SSE, **_ERRORS})
async def agent_events(
    request: Request,
    rt: Ready,
    info: SignedIn,
    cookie: SessionCookie = None,
    conversation: Annotated[
        str | None, Query(pattern=CONVERSATION_ID_PATTERN, description="a conversation to watch the messages of")
    ] = None,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="only messages after this message id")] = None,
    last_event_id: Annotated[str | None, Header(description="set by EventSource when it reconnects")] = None,
) -> StreamingResponse:
    """Live queue changes and the watched conversation's new messages (see the module doc)."""
    cursor = max(after or 0, _last_event_id(last_event_id))
    if conversation is not None:
        cid = conversation
        await on_conversation(request, cid, lambda s: s.store.conversation(cid))  # 404 before the stream opens
    streams = _streams(request)
    limit = rt.settings.server.max_event_streams_per_client
    if streams[info.agent.id] >= limit:
        raise TooManyStreamsError("client", limit)
    idle = timedelta(minutes=rt.settings.server.agent_idle_minutes)
    watch = _Watch(token_hash(cookie or ""), idle, conversation, cursor)
    body = _live(request, rt, watch, info.agent.id, streams)
    return StreamingResponse(body, media_type=events.MEDIA_TYPE, headers=events.HEADERS)


def _streams(request: Request) -> Counter[int]:
    """Open panel streams per agent id, kept with the app (one count per app)."""
    counts: Counter[int] | None = getattr(request.app.state, "agent_streams", None)
    if counts is None:
        counts = request.app.state.agent_streams = Counter()
    return counts


async def _live(
    request: Request, rt: Runtime, watch: _Watch, agent_id: int, streams: Counter[int]
) -> AsyncIterator[bytes]:
    # counted from the first byte: a response whose client left before it never runs its
    # body, and would never give its place back
    streams[agent_id] += 1
    server = rt.settings.server
    quiet = 0.0
    try:
        while not rt.closing.is_set():
            try:
                found = await run_agents(request, lambda s: _poll(s, watch, agent_clock(request)))
                if found is None:  # the session ended: so does the stream
                    return
                signature, counts, messages = found
                if messages:
                    await add_source_details(rt, watch.conversation_id or "", messages)
            except Exception:  # a failed read is retried at the next poll; the stream stays open
                log.exception("agent panel: reading live events from the store failed")
                found, messages = None, []
            sent = False
            if found is not None and signature != watch.signature:
                watch.signature = signature
                yield events.event("queue", {"counts": counts, "signature": signature})
                sent = True
            for message in messages:
                yield events.event("message", message, event_id=message["message_id"])
                watch.cursor = message["message_id"]
                sent = True
            quiet = 0.0 if sent else quiet + server.events_poll_seconds
            if quiet >= server.events_ping_seconds:
                yield events.comment("ping")
                quiet = 0.0
            await asyncio.sleep(server.events_poll_seconds)
    finally:
        streams[agent_id] -= 1
        if streams[agent_id] <= 0:
            del streams[agent_id]


def _poll(s: AgentServices, watch: _Watch, clock: Clock) -> tuple[str, dict[str, int], list[dict[str, Any]]] | None:
    """One look at the store: the queue's signature and counts, and the watched
    conversation's messages after the cursor; None once the session is gone or past its
    time. The session's last use is not bumped: an open page is not an active agent, so a
    session left idle ends here as it would on the next request."""
    rows = list(
        s.store.db.query(
            "select s.expires_at, s.last_seen_at, a.disabled from agent_sessions s "
            "join agents a on a.id = s.agent_id where s.token_hash = ?",
            [watch.session_hash],
        )
    )
    if not rows or rows[0]["disabled"]:
        return None
    now = clock()
    if now >= parse_timestamp(rows[0]["expires_at"]) or now - parse_timestamp(rows[0]["last_seen_at"]) > watch.idle:
        return None
    queue = s.handling.queue()
    messages: list[dict[str, Any]] = []
    if watch.conversation_id is not None:
        found = list(
            s.store.db.query(
                "select * from messages where conversation_id = ? and id > ? order by id limit ?",
                [watch.conversation_id, watch.cursor, _MESSAGES_PER_POLL],
            )
        )
        if found:
            names = agent_names(s)
            messages = [panel_message(decoded_message(m), names) for m in found]
    return queue.signature(), queue.counts(), messages
