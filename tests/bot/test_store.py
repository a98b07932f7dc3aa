"""The conversation store: real SQLite files in a temp dir."""

import sqlite3

import pytest

from bot.errors import UnknownConversationError
from bot.store import ConversationStore, DialogueState, MessageRecord, StoreError


@pytest.fixture
def store(tmp_path):
    with ConversationStore(tmp_path / "store.db").open() as s:
        yield s


def turn(store, conversation_id, customer="where is my order", reply="Could you tell me your order number?", **kw):
    return store.record_turn(
        conversation_id,
        MessageRecord("customer", customer),
        MessageRecord("bot", reply, intent="order_status", confidence=0.9, action="clarify",
                      sources=(("conv-1#t0", 0.81234),), composer="policy", latency_ms=12.5),
        kw.pop("state", DialogueState()),
        **kw,
    )


def test_opens_in_wal_mode_with_a_schema_version(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version == 1


def test_reopening_applies_no_migration_twice(tmp_path):
    ConversationStore(tmp_path / "s.db").open().close()
    with ConversationStore(tmp_path / "s.db").open() as again:
        assert again.schema_version == 1


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
    with pytest.raises(sqlite3.IntegrityError):
        store.record_turn(cid, MessageRecord("customer", "second"), MessageRecord("bot", None),
                          DialogueState(failures=5))
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


def test_feedback_only_on_bot_messages_and_only_up_or_down(store):
    cid = store.create_conversation()
    bot_id = turn(store, cid)
    assert store.add_feedback(bot_id, "up", "quick answer") > 0
    with pytest.raises(StoreError, match="customer message"):
        store.add_feedback(bot_id - 1, "up")
    with pytest.raises(StoreError, match="'meh'"):
        store.add_feedback(bot_id, "meh")
    with pytest.raises(StoreError, match="unknown message id 999"):
        store.add_feedback(999, "down")
