"""Conversations and their turns: each turn written whole, state round-tripped, agent messages,
client message ids, access tokens and the reads of them (real SQLite files in a temp dir)."""

import pytest

from bot.errors import UnknownConversationError
from bot.store import DialogueState, DuplicateClientMessageError, MessageRecord, StoreError
from bot.store.errors import ConstraintError
from tests.bot.store.helpers import turn


def test_a_turn_writes_customer_and_bot_messages_in_order(store):
    cid = store.create_conversation(channel="web")
    bot_id = turn(store, cid)
    messages = store.messages(cid)
    assert [m["role"] for m in messages] == ["customer", "bot"]
    assert [m["turn"] for m in messages] == [0, 1]
    assert messages[1]["id"] == bot_id
    assert messages[1]["sources"] == [{"id": "conv-1#t0", "score": 0.8123}]
    assert messages[1]["latency_ms"] == 12.5


def test_state_round_trips_through_the_store(store):
    cid = store.create_conversation()
    state = DialogueState(slots={"order_id": "#40318275"}, active_intent="order_status", failures=1)
    turn(store, cid, state=state)
    assert store.load_state(cid) == state


def test_a_failed_turn_leaves_nothing_half_written(store):
    cid = store.create_conversation()
    turn(store, cid)
    with pytest.raises(ConstraintError):
        store.record_turn(
            cid, MessageRecord("customer", "second"), MessageRecord("bot", None), DialogueState(failures=5)
        )
    assert len(store.messages(cid)) == 2
    assert store.load_state(cid).failures == 0


def test_handoff_is_recorded_with_the_bot_message(store):
    cid = store.create_conversation()
    bot_id = turn(store, cid, state=DialogueState(handed_off=True), handoff_reason="customer asked for a human")
    [handoff] = store.handoffs(cid)
    assert handoff["message_id"] == bot_id and handoff["status"] == "waiting"
    row = next(store.iter_conversations())
    assert row["status"] == "handoff"


def test_unknown_conversation_is_a_typed_error(store):
    with pytest.raises(UnknownConversationError, match="nope"):
        store.load_state("nope")
    with pytest.raises(UnknownConversationError):
        store.messages("nope")


def test_agent_messages_take_the_next_turn_and_keep_the_suggestion_they_edited(store):
    cid = store.create_conversation()
    turn(store, cid)
    plain = store.record_agent_message(cid, "  I can look into that for you.  ")
    edited = store.record_agent_message(cid, "Your parcel left today.", edited_from="Your order has shipped.")
    messages = store.messages(cid)
    assert [(m["role"], m["turn"]) for m in messages] == [("customer", 0), ("bot", 1), ("agent", 2), ("agent", 3)]
    assert [m["id"] for m in messages[2:]] == [plain, edited]
    assert messages[2]["text"] == "I can look into that for you." and messages[2]["edited_from"] is None
    assert messages[3]["edited_from"] == "Your order has shipped."
    assert messages[1]["edited_from"] is None  # bot turns never carry one


def test_agent_messages_refuse_unknown_conversations_and_empty_text_writing_nothing(store):
    with pytest.raises(UnknownConversationError):
        store.record_agent_message("nope", "hello")
    cid = store.create_conversation()
    with pytest.raises(StoreError, match="non-empty text"):
        store.record_agent_message(cid, "   ")
    assert store.messages(cid) == []
    assert store.db.count_where("messages", "true") == 0


def test_iter_messages_and_feedback_ratings_read_the_whole_store(store):
    a = store.create_conversation()
    bot_a = turn(store, a)
    b = store.create_conversation()
    bot_b = turn(store, b)
    store.record_agent_message(b, "An agent here.")
    store.add_feedback(bot_a, "up")
    store.add_feedback(bot_a, "down")  # a message has one rating: the latest
    store.add_feedback(bot_b, "up")
    rows = list(store.iter_messages())
    assert [(r["conversation_id"], r["turn"]) for r in rows] == [(a, 0), (a, 1), (b, 0), (b, 1), (b, 2)]
    assert rows[1]["sources"] == [{"id": "conv-1#t0", "score": 0.8123}]
    assert store.feedback_ratings() == {bot_a: ("down",), bot_b: ("up",)}
    assert store.db.count_where("feedback", "true") == 2


def test_a_client_message_id_finds_its_turn_and_a_second_turn_with_it_writes_nothing(store):
    cid = store.create_conversation(channel="web")
    bot_id = store.record_turn(
        cid,
        MessageRecord("customer", "hi", client_message_id="m-1"),
        MessageRecord("bot", "Hello!", action="smalltalk"),
        DialogueState(),
    )
    customer, bot = store.turn_for_client_message(cid, "m-1")
    assert (customer["text"], bot["id"], bot["text"]) == ("hi", bot_id, "Hello!")
    with pytest.raises(DuplicateClientMessageError, match="m-1"):
        store.record_turn(
            cid,
            MessageRecord("customer", "hi", client_message_id="m-1"),
            MessageRecord("bot", "Hello again!"),
            DialogueState(failures=3),
        )
    assert len(store.messages(cid)) == 2 and store.load_state(cid).failures == 0
    assert store.turn_for_client_message(cid, "m-2") is None
    # ids are unique per conversation only; messages without one never collide
    other = store.create_conversation()
    turn(store, other)
    turn(store, other)
    store.record_turn(
        other, MessageRecord("customer", "hi", client_message_id="m-1"), MessageRecord("bot", "Hello!"), DialogueState()
    )
    assert len(store.messages(other)) == 6


def test_buttons_offered_with_a_bot_message_are_kept(store):
    cid = store.create_conversation()
    store.record_turn(
        cid,
        MessageRecord("customer", "change track"),
        MessageRecord("bot", "Did you mean A or B?", action="clarify", buttons=("A", "B")),
        DialogueState(),
    )
    assert [m["buttons"] for m in store.messages(cid)] == [[], ["A", "B"]]


def test_agent_messages_after_a_message_id_are_what_a_live_channel_has_not_shown(store):
    cid = store.create_conversation()
    turn(store, cid)
    first = store.record_agent_message(cid, "one")
    second = store.record_agent_message(cid, "two")
    assert [m["id"] for m in store.agent_messages_after(cid, 0)] == [first, second]
    assert [m["text"] for m in store.agent_messages_after(cid, first)] == ["two"]
    assert store.agent_messages_after(cid, second) == []


def test_ensure_conversation_creates_once(store):
    assert store.ensure_conversation("rest-1", channel="rest") is True
    assert store.ensure_conversation("rest-1", channel="rest") is False
    assert store.conversation("rest-1")["channel"] == "rest"


def test_a_conversation_opens_only_with_its_token_and_only_while_recent(store):
    cid = store.create_conversation("web", token_hash="a" * 64)
    assert store.access_ok(cid, "a" * 64, read_hours=1)
    assert not store.access_ok(cid, "b" * 64, read_hours=1)
    assert not store.access_ok("nope", "a" * 64)
    untokened = store.create_conversation("rest")
    assert not store.access_ok(untokened, "")
    store.db.execute("update conversations set updated_at = '2020-01-01T00:00:00.000+00:00' where id = ?", [cid])
    assert not store.access_ok(cid, "a" * 64, read_hours=1) and store.access_ok(cid, "a" * 64)


def test_history_pages_run_from_the_newest_back(store):
    cid = store.create_conversation()
    for _ in range(3):
        turn(store, cid)
    page, more = store.messages_page(cid, limit=4)
    assert [m["turn"] for m in page] == [2, 3, 4, 5] and more
    older, more = store.messages_page(cid, limit=4, before=page[0]["id"])
    assert [m["turn"] for m in older] == [0, 1] and not more
