"""Ratings, under the conversation they belong to (its access token required): 👍/👎 on
one of its bot replies, and a CSAT score (1-5) for the conversation. One of each: a new
rating replaces the old, so a client cannot stack them. Both feed the fine-tuning
pipeline and reports; both are small writes on the store worker."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from bot.server.access import AuthorizedConversation, Ready
from bot.server.schemas import CsatIn, CsatOut, ErrorOut, FeedbackIn, FeedbackOut
from bot.store import ConversationStore

router = APIRouter(prefix="/api/v1/conversations", tags=["ratings"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (404, 413, 429, 503)}


@router.post("/{conversation_id}/messages/{message_id}/feedback", response_model=FeedbackOut, responses=_ERRORS)
async def set_feedback(
    conversation_id: AuthorizedConversation,
    message_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="a bot reply's message_id")],
    body: FeedbackIn,
    rt: Ready,
) -> dict:
    """Rate one of this conversation's bot replies; rating it again replaces the rating.
    Any other message id (another conversation's, a customer's own) is a 404."""
    await rt.store.call(
        lambda store: store.add_feedback(message_id, body.rating, body.comment, conversation_id=conversation_id)
    )
    return {"message_id": message_id, "rating": body.rating}


@router.post("/{conversation_id}/csat", response_model=CsatOut, responses=_ERRORS)
async def set_csat(conversation_id: AuthorizedConversation, body: CsatIn, rt: Ready) -> dict:
    """Customer satisfaction, 1 (very unhappy) to 5 (very happy), with an optional
    comment; sending it again replaces it."""
    await rt.store.call(ConversationStore.add_csat, conversation_id, body.score, body.comment)
    return {"score": body.score}
