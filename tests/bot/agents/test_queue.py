"""The agents' queue: waiting conversations longest-waiting first with their waiting
time from the injected clock, then held ones with their holder, then what the bot
handled in the last day, newest first."""

from __future__ import annotations

from datetime import timedelta

from bot.agents import ConversationHandling
from bot.agents.clock import timestamp
from bot.store import ConversationStore
from tests.bot.agents.helpers import bot_turn, pending_conversation


def test_pending_comes_oldest_first_with_waiting_time_and_the_customers_words(store, handling, clock) -> None:
    recent = pending_conversation(store, clock, waited_minutes=2, customer="a human please")
    oldest = pending_conversation(store, clock, waited_minutes=9, customer="agent!!", channel="telegram")
    queue = handling.queue()
    assert [i.conversation_id for i in queue.pending] == [oldest, recent]
    first = queue.pending[0]
    assert (first.channel, first.handling, first.reason, first.last_customer_text, first.messages) == (
        "telegram",
        "pending",
        "customer asked for a human",
        "agent!!",
        2,
    )
    assert first.pending_since == timestamp(clock() - timedelta(minutes=9))
    assert [i.waiting_seconds for i in queue.pending] == [540, 120]
    clock.advance(seconds=30)
    assert [i.waiting_seconds for i in handling.queue().pending] == [570, 150]
    assert queue.open == [] and queue.bot == []


def test_held_conversations_show_their_holder(store, handling, alice, clock) -> None:
    cid = pending_conversation(store, clock)
    handling.claim(cid, alice)
    queue = handling.queue()
    [held] = queue.open
    assert (held.conversation_id, held.handling, held.agent_name, held.agent_id) == (cid, "open", "alice", alice.id)
    assert held.pending_since is None and held.waiting_seconds is None
    assert queue.pending == []


def test_bot_conversations_of_the_last_day_newest_first_up_to_the_limit(store, handling, clock) -> None:
    cids = []
    for i in range(4):
        cid = store.create_conversation()
        bot_turn(store, cid, f"question {i}")
        store.db.execute(
            "update conversations set updated_at = ? where id = ?", [timestamp(clock() - timedelta(hours=i)), cid]
        )
        cids.append(cid)
    stale = store.create_conversation()
    bot_turn(store, stale)
    store.db.execute(
        "update conversations set updated_at = ? where id = ?", [timestamp(clock() - timedelta(hours=25)), stale]
    )
    queue = handling.queue(limit_recent=3)
    assert [i.conversation_id for i in queue.bot] == cids[:3]
    assert queue.bot[0].last_customer_text == "question 0" and queue.bot[0].reason is None
    assert [i.conversation_id for i in handling.queue().bot] == cids


def test_resolved_conversations_are_listed_with_the_bots(store, handling, alice, clock) -> None:
    cid = pending_conversation(store, clock)
    handling.resolve(cid, alice, ["refund"])
    [item] = handling.queue().bot
    assert (item.conversation_id, item.handling, item.reason) == (cid, "resolved", "customer asked for a human")


def test_the_customer_text_is_cut_to_200_characters(store, handling, clock) -> None:
    pending_conversation(store, clock, customer="word " * 100)
    [item] = handling.queue().pending
    assert item.last_customer_text is not None
    assert len(item.last_customer_text) == 200 and item.last_customer_text.endswith("…")


def test_the_signature_changes_with_the_queue_but_not_with_time(store, handling, alice, clock) -> None:
    cid = pending_conversation(store, clock)
    before = handling.queue().signature()
    clock.advance(minutes=1)
    assert handling.queue().signature() == before
    handling.claim(cid, alice)
    queue = handling.queue()
    assert queue.signature() != before
    assert queue.counts() == {"pending": 0, "open": 1, "bot": 0}
    assert queue.to_json()["open"][0]["agent_name"] == "alice"


def test_the_queue_reads_another_connections_writes(tmp_path, store, alice, clock) -> None:
    cid = pending_conversation(store, clock)
    with ConversationStore(store.target).open() as other:
        ConversationHandling(other, clock=clock).claim(cid, alice)
    assert [i.conversation_id for i in ConversationHandling(store, clock=clock).queue().open] == [cid]
