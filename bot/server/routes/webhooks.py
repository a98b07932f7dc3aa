"""The messaging platforms' webhooks: POST /webhooks/slack/events, POST /webhooks/telegram,
GET+POST /webhooks/whatsapp and GET+POST /webhooks/messenger.

Each request is checked by its platform's adapter (`bot.channels`) on the raw bytes, and
its customer messages are written to the store's channel inbox before the answer, which
comes at once: the turn and the reply follow on the channel worker (platforms retry a
webhook that is slow to answer). A platform whose secret is not set is off: 404. A bad,
missing or stale signature: 401, logged, nothing processed. A delivery the inbox has
seen (a platform's retry) is acknowledged again and not processed twice.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from bot.channels.base import BadPayloadError, Channel, ChannelOffError, InboundMessage, SignatureError, lower_headers
from bot.channels.registry import enabling_setting
from bot.server.access import channel_conversation_id, server_secret
from bot.server.runtime import Runtime, runtime
from bot.server.schemas import ErrorOut
from bot.store import ConversationStore

log = logging.getLogger("csbot.server")

router = APIRouter(prefix="/webhooks", tags=["channels"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 404, 413, 503)}


@router.post("/slack/events", responses=_ERRORS)
async def slack(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> Response:
    """Slack's Events API (the url_verification challenge and message events)."""
    return await _receive("slack", request, rt)


@router.post("/telegram", responses=_ERRORS)
async def telegram(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> Response:
    """Telegram's updates (setWebhook with a secret_token)."""
    return await _receive("telegram", request, rt)


@router.get("/whatsapp", responses=_ERRORS)
@router.post("/whatsapp", responses=_ERRORS)
async def whatsapp(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> Response:
    """WhatsApp Cloud API: the hub.challenge subscription (GET) and messages (POST)."""
    return await _receive("whatsapp", request, rt)


@router.get("/messenger", responses=_ERRORS)
@router.post("/messenger", responses=_ERRORS)
async def messenger(request: Request, rt: Annotated[Runtime, Depends(runtime)]) -> Response:
    """Messenger: the hub.challenge subscription (GET) and messages (POST)."""
    return await _receive("messenger", request, rt)


async def _receive(platform: str, request: Request, rt: Runtime) -> Response:
    channel = rt.channels.get(platform)
    if channel is None:
        raise ChannelOffError(platform, enabling_setting(platform))
    body = await request.body()
    query = dict(request.query_params)
    if request.method == "GET":
        result = channel.handshake("GET", query, body)
        if result is None:
            raise BadPayloadError(f"a GET on the {platform} webhook is only its subscription handshake")
        return _handshake_response(result.body, result.status, result.media_type)
    try:
        channel.verify(lower_headers(request.headers), body, rt.clock())
    except SignatureError as e:
        log.warning("%s webhook refused from %s: %s", platform, rt.clients.address(request.scope), e)
        raise
    result = channel.handshake("POST", query, body)
    if result is not None:
        return _handshake_response(result.body, result.status, result.media_type)
    messages = channel.parse(body)
    if messages:
        rt.require_ready()  # 503: the platform delivers again later
        keyed = _keyed(channel, messages, server_secret(request))
        new = await rt.store.call(_record, keyed, rt.clock())
        if new and rt.channel_worker is not None:
            rt.channel_worker.wake()
    return JSONResponse({"ok": True})


def _keyed(channel: Channel, messages: list[InboundMessage], secret: bytes) -> list[tuple[str, InboundMessage]]:
    """Each message with its csbot conversation (an HMAC of the platform's id: see access.py)."""
    return [(channel_conversation_id(secret, channel.name, m.external_id), m) for m in messages]


def _record(store: ConversationStore, keyed: list[tuple[str, InboundMessage]], now: float) -> int:
    """Write the messages to the inbox; how many were new (not a platform's retry)."""
    return sum(
        store.record_inbound(m.platform, m.event_id, conversation_id, m.address, m.text, now)
        for conversation_id, m in keyed
    )


def _handshake_response(body: str | dict[str, Any], status: int, media_type: str) -> Response:
    if isinstance(body, dict):
        return JSONResponse(body, status_code=status)
    return PlainTextResponse(body, status_code=status, media_type=media_type)
