"""Rasa's REST channel, so widgets and scripts written for Rasa talk to csbot unchanged:
`POST /webhooks/rest/webhook` with {"sender", "message"} answers
[{"recipient_id", "text", "buttons"?: [{"title", "payload"}]}].

A sender id maps to one conversation (channel "rest"), made on its first message; its
id is an HMAC of the sender under the server's secret, so knowing a sender id reveals no
conversation id, and the public API never reads these conversations (they have no
access token). A button's payload is its title, which picks the option when sent back.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from bot.server.access import ServerSecret, channel_conversation_id
from bot.server.runtime import Runtime, ready_runtime
from bot.server.schemas import ErrorOut, RasaIn, RasaMessage, check_length
from bot.server.turns import rasa_turn

router = APIRouter(prefix="/webhooks/rest", tags=["rasa"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (413, 429, 503)}


@router.get("/")
async def channel_status() -> dict:
    """What Rasa's REST channel answers on its root (clients use it as a health check)."""
    return {"status": "ok"}


@router.post("/webhook", response_model=list[RasaMessage], response_model_exclude_none=True, responses=_ERRORS)
async def webhook(body: RasaIn, rt: Annotated[Runtime, Depends(ready_runtime)], secret: ServerSecret) -> list[dict]:
    check_length(body.message, rt.max_message_chars, field="message")
    conversation_id = channel_conversation_id(secret, "rest", body.sender)
    rt.limit_session(conversation_id)
    reply = await rt.pool.call(conversation_id, rasa_turn, conversation_id, body.message)
    if reply["action"] == "agent":  # a human agent holds the conversation: the bot says nothing
        return []
    message: dict = {"recipient_id": body.sender, "text": reply["reply"]}
    if reply["buttons"]:
        message["buttons"] = [{"title": b, "payload": b} for b in reply["buttons"]]
    return [message]
