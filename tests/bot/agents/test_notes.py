"""Internal notes: kept per conversation with their author, stripped, 1 to 4000
characters, never among the conversation's messages."""

from __future__ import annotations

import pytest

from bot.agents import AgentNotes, InvalidAgentInputError
from bot.agents.clock import timestamp
from bot.errors import UnknownConversationError
from tests.bot.agents.helpers import pending_conversation


def test_notes_are_listed_oldest_first_with_their_author(store, alice, bob, clock) -> None:
    notes = AgentNotes(store, clock)
    cid = pending_conversation(store)
    first, first_at = notes.add(cid, alice, "  VIP customer, be nice  "), timestamp(clock())
    clock.advance(minutes=1)
    second = notes.add(cid, bob, "refund approved by finance")
    assert notes.list(cid) == [
        {
            "id": first,
            "agent_id": alice.id,
            "agent_name": "alice",
            "text": "VIP customer, be nice",
            "created_at": first_at,
        },
        {
            "id": second,
            "agent_id": bob.id,
            "agent_name": "bob",
            "text": "refund approved by finance",
            "created_at": timestamp(clock()),
        },
    ]
    assert all(m["role"] != "agent" for m in store.messages(cid))


@pytest.mark.parametrize("text", ["", "  ", "x" * 4001, None, 7])
def test_a_note_must_be_1_to_4000_characters_of_text(store, alice, text) -> None:
    notes = AgentNotes(store)
    cid = pending_conversation(store)
    with pytest.raises(InvalidAgentInputError):
        notes.add(cid, alice, text)
    assert notes.list(cid) == []


def test_notes_of_an_unknown_conversation_are_a_typed_error(store, alice) -> None:
    notes = AgentNotes(store)
    with pytest.raises(UnknownConversationError):
        notes.add("nope", alice, "hello")
    with pytest.raises(UnknownConversationError):
        notes.list("nope")


def test_notes_stay_with_their_conversation(store, alice) -> None:
    notes = AgentNotes(store)
    a, b = pending_conversation(store), pending_conversation(store)
    notes.add(a, alice, "about a")
    assert [n["text"] for n in notes.list(a)] == ["about a"] and notes.list(b) == []
