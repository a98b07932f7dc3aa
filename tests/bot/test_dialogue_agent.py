"""The dialogue manager beside human agents: who handles a conversation is read from the
store's `handling` (set by the agents' side), and the bot stays silent while a human holds it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store import ConversationStore, MessageRecord
from tests.bot.test_dialogue_policy import DOMAIN, PAYPAL_REPLY, Assistant, assistant


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConversationStore]:
    with ConversationStore(tmp_path / "store.db").open() as s:
        yield s


@pytest.fixture
def bot(store: ConversationStore) -> Assistant:
    return assistant(store)


def _set_handling(store: ConversationStore, conversation_id: str, handling: str) -> None:
    store.db.execute("update conversations set handling = ? where id = ?", [handling, conversation_id])


def test_a_handoff_puts_the_conversation_in_the_agents_queue_and_later_turns_wait(bot):
    cid = bot.turn("I want to speak to a human").conversation_id
    assert bot.store.handling(cid) == "pending"
    later = bot.turn("can I pay with paypal?", cid)
    assert (later.action, later.reply) == ("handoff", DOMAIN.waiting_for_agent_message)
    assert len(bot.store.handoffs(cid)) == 1


def test_while_an_agent_holds_the_conversation_the_bot_stores_the_message_and_says_nothing(bot):
    cid = bot.turn("I want to speak to a human").conversation_id
    _set_handling(bot.store, cid, "open")
    composed_before = len(bot.composer.requests)
    result = bot.turn("can I pay with paypal?", cid)
    assert (result.action, result.reply, result.composer) == ("agent", "", "agent")
    assert (result.intent, result.confidence) == ("payment_methods", 0.92)
    last = bot.store.messages(cid)[-1]
    assert (last["id"], last["role"], last["text"], last["intent"]) == (
        result.message_id,
        "customer",
        "can I pay with paypal?",
        "payment_methods",
    )
    assert len(bot.composer.requests) == composed_before  # nothing was composed


def test_after_the_agent_hands_back_the_bot_answers_even_if_its_state_still_says_handed_off(bot):
    cid = bot.turn("I want to speak to a human").conversation_id
    assert bot.store.load_state(cid).handed_off  # the state as the handoff turn wrote it
    _set_handling(bot.store, cid, "bot")  # the agent handed back; the state was not touched
    result = bot.turn("can I pay with paypal?", cid)
    assert (result.action, result.reply) == ("answer", f"fake answer for payment_methods: {PAYPAL_REPLY}")
    assert not bot.store.load_state(cid).handed_off


def test_a_customer_writing_into_a_resolved_conversation_is_answered_by_the_bot_again(bot):
    cid = bot.turn("I want to speak to a human").conversation_id
    _set_handling(bot.store, cid, "resolved")
    assert bot.turn("can I pay with paypal?", cid).action == "answer"
    assert bot.store.handling(cid) == "bot"


def test_a_silent_turn_is_found_again_by_its_client_message_id_without_a_reply(store):
    cid = store.create_conversation("web")
    message_id = store.record_customer_message(cid, MessageRecord("customer", "hi", client_message_id="m-1"))
    found = store.turn_for_client_message(cid, "m-1")
    assert found is not None
    customer, reply = found
    assert (customer["id"], reply) == (message_id, None)
