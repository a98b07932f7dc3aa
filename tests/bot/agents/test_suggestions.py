"""The suggestion log: what was shown to whom for which customer message (once, however
often the panel asks), discarding, and reading back; sending is tested with handling."""

from __future__ import annotations

import pytest

from bot.agents import (
    InvalidAgentInputError,
    InvalidTransitionError,
    SuggestionDraft,
    SuggestionLog,
    UnknownSuggestionError,
)
from bot.agents.clock import timestamp
from bot.errors import UnknownConversationError
from tests.bot.agents.helpers import pending_conversation

DRAFTS = [
    SuggestionDraft("generated", "gpt2", "Your order ships tomorrow.", (("kb-ship#0", 0.912345),), 0.8),
    SuggestionDraft("retrieved", "retrieval", "Orders ship within 2 days.", (("conv-9#t1", 0.7),), 0.7),
]


def customer_message(store, cid: str) -> int:
    return next(m["id"] for m in store.messages(cid) if m["role"] == "customer")


def test_shown_suggestions_are_logged_in_rank_order(store, alice, clock) -> None:
    log = SuggestionLog(store, clock)
    cid = pending_conversation(store)
    mid = customer_message(store, cid)
    ids = log.log_shown(cid, mid, alice, DRAFTS)
    rows = log.for_conversation(cid)
    assert [r["id"] for r in rows] == ids
    first = rows[0]
    assert (first["rank"], first["kind"], first["composer"], first["outcome"], first["agent_id"]) == (
        0,
        "generated",
        "gpt2",
        "shown",
        alice.id,
    )
    assert first["sources"] == [{"id": "kb-ship#0", "score": 0.9123}]
    assert (first["for_message_id"], first["shown_at"], first["final_text"]) == (mid, timestamp(clock()), None)
    assert rows[1]["rank"] == 1 and log.get(ids[1])["text"] == "Orders ship within 2 days."


def test_logging_the_same_turn_again_returns_the_first_ids(store, alice, bob) -> None:
    log = SuggestionLog(store)
    cid = pending_conversation(store)
    mid = customer_message(store, cid)
    ids = log.log_shown(cid, mid, alice, DRAFTS)
    assert log.log_shown(cid, mid, alice, list(reversed(DRAFTS))) == ids
    assert len(log.for_conversation(cid)) == 2
    assert log.log_shown(cid, mid, bob, DRAFTS) != ids  # shown to someone else: logged for them
    assert len(log.for_conversation(cid)) == 4


def test_log_refuses_bad_drafts_and_foreign_messages(store, alice) -> None:
    log = SuggestionLog(store)
    cid, other = pending_conversation(store), pending_conversation(store)
    mid = customer_message(store, cid)
    with pytest.raises(InvalidAgentInputError, match="at most 3"):
        log.log_shown(cid, mid, alice, DRAFTS * 2)
    with pytest.raises(InvalidAgentInputError, match="kind"):
        log.log_shown(cid, mid, alice, [SuggestionDraft("made-up", None, "x")])
    with pytest.raises(InvalidAgentInputError, match="text"):
        log.log_shown(cid, mid, alice, [SuggestionDraft("generated", None, "  ")])
    with pytest.raises(InvalidAgentInputError, match="not in conversation"):
        log.log_shown(other, mid, alice, DRAFTS)
    with pytest.raises(UnknownConversationError):
        log.log_shown("nope", mid, alice, DRAFTS)
    assert log.for_conversation(cid) == [] and log.for_conversation(other) == []


def test_discard_marks_a_shown_suggestion_once(store, alice, clock) -> None:
    log = SuggestionLog(store, clock)
    cid = pending_conversation(store)
    sid, keep = log.log_shown(cid, customer_message(store, cid), alice, DRAFTS)
    log.discard(sid, alice, conversation_id=cid)
    decided = timestamp(clock())
    clock.advance(minutes=1)
    log.discard(sid, alice)  # again: nothing changes
    row = log.get(sid)
    assert (row["outcome"], row["decided_at"]) == ("discarded", decided)
    assert log.get(keep)["outcome"] == "shown"


def test_discard_of_an_unknown_foreign_or_sent_suggestion_is_refused(store, handling, alice) -> None:
    log = SuggestionLog(store)
    cid, other = pending_conversation(store), pending_conversation(store)
    sid, _ = log.log_shown(cid, customer_message(store, cid), alice, DRAFTS)
    with pytest.raises(UnknownSuggestionError):
        log.discard(999, alice)
    with pytest.raises(UnknownSuggestionError):
        log.discard(sid, alice, conversation_id=other)
    with pytest.raises(UnknownSuggestionError):
        log.get(sid, conversation_id=other)
    handling.send(cid, alice, "Your order ships tomorrow.", suggestion_id=sid)
    with pytest.raises(InvalidTransitionError, match="sent already"):
        log.discard(sid, alice)
    assert log.get(sid)["outcome"] == "sent"


def test_a_discarded_suggestion_can_still_be_sent_edited(store, handling, alice) -> None:
    log = SuggestionLog(store)
    cid = pending_conversation(store)
    sid, _ = log.log_shown(cid, customer_message(store, cid), alice, DRAFTS)
    log.discard(sid, alice)
    message_id = handling.send(cid, alice, "Your order ships on Friday.", suggestion_id=sid)
    row = log.get(sid)
    assert (row["outcome"], row["final_text"], row["message_id"]) == (
        "edited",
        "Your order ships on Friday.",
        message_id,
    )
