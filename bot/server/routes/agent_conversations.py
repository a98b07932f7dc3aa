"""The agents' queue and one conversation as an agent works it: read it whole (without
the customer's token), claim or take it over, give it to someone else, hand it back to
the bot, resolve it; write to the customer, and keep internal notes.

Every step is one store transaction in bot/agents (race-safe: of two agents claiming at
once, one gets it and the other a 409 naming the holder). Store work runs on the
runtime's store worker; the titles and texts of a bot reply's sources come from the
index, which lives with the assistants on the inference workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Request
from fastapi import Path as PathParam

from bot.agents.assist import describe_units
from bot.errors import UnknownConversationError
from bot.server.agent_auth import AgentServices, Ready, SignedIn, SignedInWrite, run_agents
from bot.server.agent_schemas import (
    AgentMessageIn,
    AssignIn,
    ConversationChanged,
    ConversationView,
    MessageCreated,
    NoteCreated,
    NoteIn,
    QueueOut,
    ResolveIn,
)
from bot.server.errors import QueueFullError, TurnDeadlineError, UnknownPanelConversationError
from bot.server.runtime import Runtime
from bot.server.schemas import CONVERSATION_ID_PATTERN, ErrorOut, check_length

log = logging.getLogger("csbot.server")

T = TypeVar("T")

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 404, 409, 503)}

ConversationId = Annotated[str, PathParam(pattern=CONVERSATION_ID_PATTERN, description="the conversation's id")]


async def on_conversation(request: Request, conversation_id: str, fn: Callable[[AgentServices], T]) -> T:
    """`fn(services)` on the store worker, an unknown conversation being the panel's 404
    `not_found` (not the public API's, which speaks of access tokens)."""
    try:
        return await run_agents(request, fn)
    except UnknownConversationError:
        raise UnknownPanelConversationError(conversation_id) from None


# -- the queue ---------------------------------------------------------------------------


@router.get("/queue", response_model=QueueOut, responses=_ERRORS)
async def queue(request: Request, info: SignedIn) -> dict:
    """Conversations waiting for an agent (longest waiting first), those held by agents,
    and those the bot handled in the last 24 hours (newest first)."""
    found = await run_agents(request, lambda s: s.handling.queue())
    return found.to_json()


# -- one conversation --------------------------------------------------------------------


@router.get("/conversations/{conversation_id}", response_model=ConversationView, responses=_ERRORS)
async def conversation_view(conversation_id: ConversationId, request: Request, rt: Ready, info: SignedIn) -> dict:
    """The whole conversation as an agent sees it: its handling, every message (with the
    bot's intent, confidence, composer and sources), the internal notes and the CSAT."""
    view = await on_conversation(request, conversation_id, lambda s: read_view(s, conversation_id))
    await add_source_details(rt, conversation_id, view["messages"])
    return view


def read_view(s: AgentServices, conversation_id: str) -> dict[str, Any]:
    """The view's parts the store holds (sources as stored: id and score)."""
    state = s.handling.state(conversation_id)
    names = agent_names(s)
    messages = [panel_message(m, names) for m in s.store.messages(conversation_id)]
    notes = [
        {"id": n["id"], "agent_name": n["agent_name"] or "", "text": n["text"], "created_at": n["created_at"]}
        for n in s.notes.list(conversation_id)
    ]
    csat = s.store.csat(conversation_id)
    return {
        "conversation": state.to_json(),
        "messages": messages,
        "notes": notes,
        "csat": csat[-1]["score"] if csat else None,
    }


def agent_names(s: AgentServices) -> dict[int, str]:
    return {a.id: a.name for a in s.accounts.list()}


def panel_message(m: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    """A stored message (decoded) as the panel shows it."""
    agent_id = m.get("agent_id")
    return {
        "message_id": m["id"],
        "role": m["role"],
        "text": m["text"],
        "created_at": m["created_at"],
        "intent": m.get("intent"),
        "confidence": m.get("confidence"),
        "action": m.get("action"),
        "composer": m.get("composer"),
        "sources": [{"id": s["id"], "score": s["score"]} for s in m.get("sources") or []],
        "agent": names.get(agent_id) if agent_id is not None else None,
        "edited_from": m.get("edited_from"),
    }


async def add_source_details(rt: Runtime, conversation_id: str, messages: Sequence[dict[str, Any]]) -> None:
    """Fill in each source's kind, title and text from the index (on the conversation's
    inference worker). When the workers are too busy, the sources stay as id and score:
    the agent still gets the conversation."""
    ids = sorted({s["id"] for m in messages for s in m["sources"]})
    units: dict[str, dict[str, Any]] = {}
    if ids:
        try:
            units = await rt.pool.call(conversation_id, describe_units, ids)
        except (QueueFullError, TurnDeadlineError):
            log.warning("agent panel: inference workers busy; sources of %s shown without titles", conversation_id)
    for m in messages:
        for source in m["sources"]:
            unit = units.get(source["id"])
            source["kind"] = unit["kind"] if unit else None
            source["title"] = unit["title"] if unit else None
            source["text"] = unit["text"] if unit else ""


# -- who handles it ----------------------------------------------------------------------


@router.post("/conversations/{conversation_id}/claim", response_model=ConversationChanged, responses=_ERRORS)
async def claim(conversation_id: ConversationId, request: Request, info: SignedInWrite) -> dict:
    """Take a waiting conversation: you hold it until you hand it back or resolve it. 409
    `conversation_held` (with `holder`) when another agent got it first."""
    state = await on_conversation(request, conversation_id, lambda s: s.handling.claim(conversation_id, info.agent))
    return {"conversation": state.to_json()}


@router.post("/conversations/{conversation_id}/take-over", response_model=ConversationChanged, responses=_ERRORS)
async def take_over(conversation_id: ConversationId, request: Request, info: SignedInWrite) -> dict:
    """Take a conversation the bot is handling (or a resolved or waiting one): the bot
    stays silent while you hold it."""
    state = await on_conversation(request, conversation_id, lambda s: s.handling.take_over(conversation_id, info.agent))
    return {"conversation": state.to_json()}


@router.post("/conversations/{conversation_id}/hand-back", response_model=ConversationChanged, responses=_ERRORS)
async def hand_back(conversation_id: ConversationId, request: Request, info: SignedInWrite) -> dict:
    """Give a conversation you hold back to the bot: it answers the customer's next message."""
    state = await on_conversation(request, conversation_id, lambda s: s.handling.hand_back(conversation_id, info.agent))
    return {"conversation": state.to_json()}


@router.post("/conversations/{conversation_id}/assign", response_model=ConversationChanged, responses=_ERRORS)
async def assign(conversation_id: ConversationId, body: AssignIn, request: Request, info: SignedInWrite) -> dict:
    """Give a waiting conversation, or one you hold (any, for an admin), to another agent."""
    state = await on_conversation(
        request, conversation_id, lambda s: s.handling.assign(conversation_id, body.agent, by=info.agent)
    )
    return {"conversation": state.to_json()}


@router.post("/conversations/{conversation_id}/resolve", response_model=ConversationChanged, responses=_ERRORS)
async def resolve(conversation_id: ConversationId, body: ResolveIn, request: Request, info: SignedInWrite) -> dict:
    """Close a conversation you hold (or a waiting one) with tags saying what it was about."""
    state = await on_conversation(
        request, conversation_id, lambda s: s.handling.resolve(conversation_id, info.agent, body.tags)
    )
    return {"conversation": state.to_json()}


# -- writing -----------------------------------------------------------------------------


@router.post(
    "/conversations/{conversation_id}/messages", status_code=201, response_model=MessageCreated, responses=_ERRORS
)
async def send_message(
    conversation_id: ConversationId, body: AgentMessageIn, request: Request, rt: Ready, info: SignedInWrite
) -> dict:
    """Write to the customer (their widget shows it live). A waiting conversation is
    claimed, and one the bot handles taken over, on the way; 409 `conversation_resolved`
    for a resolved one (take it over first), `conversation_held` when another agent has it.
    With `suggestion_id`, the message is recorded as that suggestion sent or edited."""
    check_length(body.text, rt.max_message_chars)
    message_id = await on_conversation(
        request,
        conversation_id,
        lambda s: s.handling.send(conversation_id, info.agent, body.text, suggestion_id=body.suggestion_id),
    )
    return {"message_id": message_id}


@router.post("/conversations/{conversation_id}/notes", status_code=201, response_model=NoteCreated, responses=_ERRORS)
async def add_note(conversation_id: ConversationId, body: NoteIn, request: Request, info: SignedInWrite) -> dict:
    """An internal note for other agents; the customer never sees it."""
    note_id = await on_conversation(
        request, conversation_id, lambda s: s.notes.add(conversation_id, info.agent, body.text)
    )
    return {"note_id": note_id}
