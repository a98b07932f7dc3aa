"""Rasa's REST channel, so widgets and scripts written for Rasa talk to csbot unchanged:
`POST /webhooks/rest/webhook` with {"sender", "message"} answers
[{"recipient_id", "text", "buttons"?: [{"title", "payload"}]}].

A sender id maps to one conversation (channel "rest"), made on its first message; a
button's payload is its title, which picks the option when sent back as a message.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from bot.server.runtime import Runtime, ready_runtime
from bot.server.schemas import ErrorOut, RasaIn, RasaMessage, check_length
from bot.server.turns import rasa_conversation_id, rasa_turn

router = APIRouter(prefix="/webhooks/rest", tags=["rasa"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (413, 429, 503)}


@router.get("/")
async def channel_status() -> dict:
    """What Rasa's REST channel answers on its root (clients use it as a health check)."""
    return {"status": "ok"}


@router.post("/webhook", response_model=list[RasaMessage], response_model_exclude_none=True,
             responses=_ERRORS)
async def webhook(body: RasaIn, rt: Annotated[Runtime, Depends(ready_runtime)]) -> list[dict]:
    check_length(body.message, rt.max_message_chars, field="message")
    conversation_id = rasa_conversation_id(body.sender)
    rt.limit_session(conversation_id)
    result = await rt.pool.call(conversation_id, rasa_turn, body.sender, body.message)
    message: dict = {"recipient_id": body.sender, "text": result.reply}
    if result.buttons:
        message["buttons"] = [{"title": b, "payload": b} for b in result.buttons]
    return [message]
