"""The assist panel's reads that need the models: suggested replies for a conversation's
latest customer message (logged as shown to the agent, so what becomes of each one can be
learnt from), similar past conversations, and a search over the knowledge base and past
transcripts. The models run on the conversation's inference worker; the log is written on
the store worker.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from bot.agents.assist import describe_units, search_knowledge, suggest_replies
from bot.agents.sessions import SessionInfo
from bot.errors import UnknownConversationError
from bot.server.access import Ready
from bot.server.agent_auth import AgentServices, SignedIn, SignedInWrite, run_agents
from bot.server.schemas import CONVERSATION_ID_PATTERN, ErrorOut
from bot.store import ConversationStore

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 404, 503)}
ConversationPath = Annotated[str, Path(pattern=CONVERSATION_ID_PATTERN, description="the conversation's id")]


@router.get("/conversations/{conversation_id}/suggestions", responses=_ERRORS)
async def suggestions(conversation_id: ConversationPath, session: SignedIn, rt: Ready, request: Request) -> dict:
    """Up to 3 replies for the conversation's latest customer message: the live
    composer's (GPT-2 when one is promoted) and retrieved ones, each with its sources
    (the past conversation or article it came from, and the score); and the similar past
    conversations. Logged as shown to this agent (asking again for the same message
    returns the same suggestions). `for_message_id` is the customer message they answer:
    a newer customer message makes them stale."""
    latest = await rt.store.call(_latest_customer_message, conversation_id)
    if latest is None:
        return {"for_message_id": None, "suggestions": [], "similar": []}
    result = await rt.pool.call(conversation_id, suggest_replies, conversation_id, latest)

    def log(services: AgentServices) -> list[dict[str, Any]]:
        ids = services.suggestions.log_shown(conversation_id, latest, session.agent, result.suggestions)
        return [services.suggestions.get(i) for i in ids]

    rows = await run_agents(request, log)
    units = dict(result.units)
    unknown = sorted({s["id"] for row in rows for s in row["sources"]} - units.keys())
    if unknown:  # suggestions logged earlier, from units this search did not return
        units.update(await rt.pool.call(conversation_id, describe_units, unknown))
    return {
        "for_message_id": latest,
        "suggestions": [_suggestion_out(row, units) for row in rows],
        "similar": result.similar,
    }


def _latest_customer_message(store: ConversationStore, conversation_id: str) -> int | None:
    if not store.conversation_exists(conversation_id):
        raise UnknownConversationError(conversation_id)
    rows = list(
        store.db.query(
            "select max(id) as id from messages where conversation_id = ? and role = 'customer'", [conversation_id]
        )
    )
    return rows[0]["id"] if rows and rows[0]["id"] is not None else None


def _suggestion_out(row: dict[str, Any], units: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "suggestion_id": row["id"],
        "kind": row["kind"],
        "composer": row["composer"],
        "text": row["text"],
        "score": row["score"],
        "outcome": row["outcome"],
        "sources": [{**units.get(s["id"], {"id": s["id"]}), "score": s["score"]} for s in row["sources"]],
    }


@router.post(
    "/conversations/{conversation_id}/suggestions/{suggestion_id}/discard",
    status_code=204,
    response_class=Response,
    responses=_ERRORS,
)
async def discard_suggestion(
    conversation_id: ConversationPath,
    suggestion_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    session: SignedInWrite,
    request: Request,
) -> Response:
    """The agent will not use this suggestion (logged: discarded suggestions never teach
    the model)."""

    await run_agents(request, lambda s: s.suggestions.discard(suggestion_id, session.agent, conversation_id))
    return Response(status_code=204)


@router.get("/search", responses=_ERRORS)
async def search(
    session: SignedIn,
    rt: Ready,
    q: Annotated[str, Query(min_length=1, max_length=500, description="what to look for")],
    k: Annotated[int, Query(ge=1, le=20, description="how many hits")] = 5,
    kind: Annotated[
        Literal["kb", "transcript", "qa"] | None, Query(description="only knowledge-base articles or transcripts")
    ] = None,
) -> dict:
    """The knowledge-base chunks and past transcript turns closest to `q`."""
    if not q.strip():
        return {"hits": []}
    # any worker will do: a search touches no conversation (keyed by the agent for spread)
    return {"hits": await rt.pool.call(f"search:{_agent_key(session)}", search_knowledge, q, k, kind)}


def _agent_key(session: SessionInfo) -> str:
    return str(session.agent.id)
