"""Erasure and retention: a conversation goes with every row that refers to it, and is found by
what it mentions or by how long it has been idle."""

import pytest

from bot.errors import UnknownConversationError
from bot.store import DialogueState, MessageRecord
from tests.bot.store.helpers import turn

_AGENT = {
    "name": "ana",
    "role": "agent",
    "password_hash": "x",
    "disabled": 0,
    "created_at": "2026-01-01",
    "password_changed_at": "2026-01-01",
}


def test_erasing_a_conversation_removes_every_row_that_refers_to_it(store):
    gone, kept = store.create_conversation(), store.create_conversation()
    for cid in (gone, kept):
        bot_id = turn(store, cid)
        store.add_feedback(bot_id, "up")
        store.add_csat(cid, 5)
        store.record_turn(
            cid,
            MessageRecord("customer", "a person please"),
            MessageRecord("bot", "Connecting you.", action="handoff"),
            DialogueState(handed_off=True),
            handoff_reason="asked",
        )
    agent_id = store.db.insert("agents", _AGENT)
    for cid in (gone, kept):
        store.db.insert(
            "agent_notes", {"conversation_id": cid, "agent_id": agent_id, "text": "VIP", "created_at": "2026-01-01"}
        )
        store.db.insert(
            "suggestions",
            {
                "conversation_id": cid,
                "for_message_id": 1,
                "agent_id": agent_id,
                "rank": 0,
                "kind": "retrieved",
                "text": "Try this.",
                "shown_at": "2026-01-01",
                "outcome": "shown",
            },
        )
    assert store.erase_conversation(gone) == {
        "feedback": 1,
        "csat": 1,
        "agent_notes": 1,
        "suggestions": 1,
        "handoffs": 1,
        "messages": 4,
        "conversations": 1,
    }
    assert not store.conversation_exists(gone) and len(store.messages(kept)) == 4
    assert len(store.feedback_ratings()) == 1 and len(store.handoffs()) == 1
    assert store.db.count_where("agent_notes", "true") == 1 and store.db.count_where("suggestions", "true") == 1
    with pytest.raises(UnknownConversationError):
        store.erase_conversation(gone)


def test_conversations_are_found_by_what_they_mention_and_by_idleness(store):
    a, b = store.create_conversation(), store.create_conversation()
    store.record_turn(
        a, MessageRecord("customer", "I'm Dana.Lee@Example.org"), MessageRecord("bot", "Thanks"), DialogueState()
    )
    store.record_turn(
        b,
        MessageRecord("customer", "hi"),
        MessageRecord("bot", "Hello"),
        DialogueState(slots={"email": "dana.lee@example.org"}),
    )
    assert store.conversations_mentioning("dana.lee@example.org") == sorted([a, b])
    assert store.conversations_mentioning("dana_lee%") == []  # LIKE wildcards are literal
    assert store.conversations_mentioning("  ") == []
    store.db.execute("update conversations set updated_at = '2020-01-01T00:00:00.000+00:00' where id = ?", [a])
    assert store.idle_conversations(30) == [a]
