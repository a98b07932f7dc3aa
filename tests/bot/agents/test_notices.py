"""What the customer's channel is told when an agent hands a conversation back or resolves
it: one system message each, with the action the widget localizes and streams by."""

from __future__ import annotations

import pytest

from bot.agents.errors import InvalidTransitionError
from bot.agents.handling import NOTICES
from tests.bot.agents.helpers import pending_conversation


def test_handing_back_and_resolving_each_leave_one_notice_after_the_agents_reply(store, handling, alice):
    cid = pending_conversation(store)
    handling.claim(cid, alice)
    reply_id = handling.send(cid, alice, "Hi, I'm Alice. Let me check.")
    handling.hand_back(cid, alice)
    handling.take_over(cid, alice)
    handling.resolve(cid, alice, ["refund"])

    notices = [m for m in store.messages(cid) if m["role"] == "system"]
    assert [(m["action"], m["text"], m["agent_id"]) for m in notices] == [
        ("handed_back", NOTICES["handed_back"], alice.id),
        ("resolved", NOTICES["resolved"], alice.id),
    ]
    assert notices[0]["id"] > reply_id


def test_a_refused_hand_back_leaves_no_notice(store, handling, alice):
    cid = pending_conversation(store)
    with pytest.raises(InvalidTransitionError):
        handling.hand_back(cid, alice)  # pending: claim it first
    assert [m for m in store.messages(cid) if m["role"] == "system"] == []
