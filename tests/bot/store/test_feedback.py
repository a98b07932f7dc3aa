"""Ratings of bot replies and CSAT scores: one each, typed errors, scoped to a conversation."""

import pytest

from bot.errors import UnknownConversationError
from bot.store import NotABotMessageError, StoreError, UnknownMessageError
from tests.bot.store.helpers import turn


def test_feedback_only_on_bot_messages_and_only_up_or_down(store):
    cid = store.create_conversation()
    bot_id = turn(store, cid)
    rating_id = store.add_feedback(bot_id, "up", "quick answer")
    assert rating_id == 1  # the id of the rating row written, the store's first
    assert store.feedback_votes() == {bot_id: ("up", "customer")}
    assert next(store.db.rows_where("feedback", "id = ?", [rating_id]))["comment"] == "quick answer"
    with pytest.raises(StoreError, match="customer message"):
        store.add_feedback(bot_id - 1, "up")
    with pytest.raises(StoreError, match="'meh'"):
        store.add_feedback(bot_id, "meh")
    with pytest.raises(StoreError, match="unknown message id 999"):
        store.add_feedback(999, "down")


def test_feedback_is_for_bot_replies_not_agent_messages(store):
    cid = store.create_conversation()
    agent_id = store.record_agent_message(cid, "hello")
    with pytest.raises(StoreError, match="agent message"):
        store.add_feedback(agent_id, "up")


def test_feedback_errors_are_typed_for_the_http_edge(store):
    cid = store.create_conversation()
    bot_id = turn(store, cid)
    with pytest.raises(UnknownMessageError):
        store.add_feedback(10_000, "up")
    with pytest.raises(NotABotMessageError):
        store.add_feedback(bot_id - 1, "up")
    store.add_feedback(bot_id, "down")
    store.add_feedback(bot_id, "up")
    assert store.latest_ratings(cid) == {bot_id: "up"}


def test_feedback_scoped_to_a_conversation_refuses_another_conversations_reply(store):
    mine, theirs = store.create_conversation(), store.create_conversation()
    turn(store, mine)
    their_reply = turn(store, theirs)
    with pytest.raises(UnknownMessageError):
        store.add_feedback(their_reply, "down", conversation_id=mine)
    assert store.add_feedback(their_reply, "down", conversation_id=theirs, author="agent") == 1
    assert next(store.db.rows_where("feedback", "id = 1"))["author"] == "agent" and store.latest_ratings(mine) == {}


def test_csat_scores_are_whole_numbers_from_1_to_5_for_known_conversations(store):
    cid = store.create_conversation()
    first = store.add_csat(cid, 2)
    assert first == 1
    assert store.add_csat(cid, 4, "fine") == first  # one per conversation: the second replaces the first
    for bad in (0, 6, 4.5, True, "5"):
        with pytest.raises(StoreError, match="1 to 5"):
            store.add_csat(cid, bad)
    with pytest.raises(UnknownConversationError):
        store.add_csat("nope", 3)
    assert [(c["score"], c["comment"]) for c in store.csat(cid)] == [(4, "fine")]
