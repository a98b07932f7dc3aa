"""Ratings: 👍/👎 on a bot reply, and a CSAT score (1-5) at the end of a conversation.
Both feed the fine-tuning pipeline and reports; both are small writes on the store worker."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from bot.server.runtime import Runtime, ready_runtime
from bot.server.schemas import (
    CONVERSATION_ID_PATTERN,
    CsatCreated,
    CsatIn,
    ErrorOut,
    FeedbackCreated,
    FeedbackIn,
)
from bot.store import ConversationStore

router = APIRouter(prefix="/api/v1", tags=["ratings"])

Ready = Annotated[Runtime, Depends(ready_runtime)]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (404, 413, 429, 503)}


@router.post("/messages/{message_id}/feedback", status_code=201, response_model=FeedbackCreated,
             responses=_ERRORS)
async def add_feedback(
    message_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="a bot reply's message_id")],
    body: FeedbackIn,
    rt: Ready,
) -> dict:
    """Rate a bot reply. A customer or agent message id is a 422; the latest rating counts."""
    feedback_id = await rt.store.call(ConversationStore.add_feedback, message_id, body.rating, body.comment)
    return {"feedback_id": feedback_id}


@router.post("/conversations/{conversation_id}/csat", status_code=201, response_model=CsatCreated,
             responses=_ERRORS)
async def add_csat(
    conversation_id: Annotated[str, Path(pattern=CONVERSATION_ID_PATTERN)],
    body: CsatIn,
    rt: Ready,
) -> dict:
    """Customer satisfaction, 1 (very unhappy) to 5 (very happy), with an optional comment."""
    csat_id = await rt.store.call(ConversationStore.add_csat, conversation_id, body.score, body.comment)
    return {"csat_id": csat_id}
