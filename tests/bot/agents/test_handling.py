"""Who handles a conversation: every step from every handling state, by the holder,
another agent and an admin; what each step writes (episodes, the legacy status column,
the dialogue state, tags); and agent messages with their suggestions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.agents import (
    Agent,
    ConversationHandling,
    ConversationHeldError,
    ConversationResolvedError,
    ForbiddenError,
    InvalidAgentInputError,
    InvalidTransitionError,
    SuggestionDraft,
    SuggestionLog,
    UnknownAgentError,
    UnknownSuggestionError,
)
from bot.agents.clock import timestamp
from bot.errors import UnknownConversationError
from tests.bot.agents.helpers import bot_turn, pending_conversation


@pytest.fixture
def people(add_agent, alice: Agent, bob: Agent, boss: Agent) -> dict[str, Agent]:
    return {"alice": alice, "bob": bob, "boss": boss, "carol": add_agent("carol")}


@pytest.fixture
def make(store, handling: ConversationHandling, people) -> Callable[[str], str]:
    """A conversation in the named handling state; 'open' ones are alice's."""

    def make(state: str) -> str:
        if state == "bot":
            cid = store.create_conversation(channel="web")
            bot_turn(store, cid)
            return cid
        cid = pending_conversation(store)
        if state == "open":
            handling.claim(cid, people["alice"])
        elif state == "resolved":
            handling.resolve(cid, people["alice"], ["refund"])
        return cid

    return make


def act(handling: ConversationHandling, action: str, cid: str, actor: Agent) -> None:
    if action == "claim":
        handling.claim(cid, actor)
    elif action == "take_over":
        handling.take_over(cid, actor)
    elif action == "assign":
        handling.assign(cid, "carol", by=actor)
    elif action == "hand_back":
        handling.hand_back(cid, actor)
    elif action == "resolve":
        handling.resolve(cid, actor, ["done"])
    elif action == "send":
        handling.send(cid, actor, "Hello, I am looking into it.")


# (state, action, actor, expected): an error class, or (handling after, holder after)
MATRIX = [
    ("bot", "claim", "bob", InvalidTransitionError),
    ("pending", "claim", "bob", ("open", "bob")),
    ("open", "claim", "bob", ConversationHeldError),
    ("open", "claim", "boss", ConversationHeldError),
    ("open", "claim", "alice", ("open", "alice")),
    ("resolved", "claim", "bob", InvalidTransitionError),
    ("bot", "take_over", "bob", ("open", "bob")),
    ("pending", "take_over", "bob", ("open", "bob")),
    ("open", "take_over", "bob", ConversationHeldError),
    ("open", "take_over", "alice", ("open", "alice")),
    ("resolved", "take_over", "bob", ("open", "bob")),
    ("bot", "assign", "boss", InvalidTransitionError),
    ("pending", "assign", "bob", ("open", "carol")),
    ("open", "assign", "bob", ForbiddenError),
    ("open", "assign", "alice", ("open", "carol")),
    ("open", "assign", "boss", ("open", "carol")),
    ("resolved", "assign", "boss", InvalidTransitionError),
    ("bot", "hand_back", "alice", InvalidTransitionError),
    ("pending", "hand_back", "boss", InvalidTransitionError),
    ("open", "hand_back", "bob", ForbiddenError),
    ("open", "hand_back", "alice", ("bot", None)),
    ("open", "hand_back", "boss", ("bot", None)),
    ("resolved", "hand_back", "alice", InvalidTransitionError),
    ("bot", "resolve", "bob", InvalidTransitionError),
    ("pending", "resolve", "bob", ("resolved", None)),
    ("open", "resolve", "bob", ForbiddenError),
    ("open", "resolve", "alice", ("resolved", None)),
    ("open", "resolve", "boss", ("resolved", None)),
    ("resolved", "resolve", "boss", ConversationResolvedError),
    ("bot", "send", "bob", ("open", "bob")),
    ("pending", "send", "bob", ("open", "bob")),
    ("open", "send", "bob", ConversationHeldError),
    ("open", "send", "boss", ConversationHeldError),
    ("open", "send", "alice", ("open", "alice")),
    ("resolved", "send", "alice", ConversationResolvedError),
]


@pytest.mark.parametrize(("state", "action", "actor", "expected"), MATRIX, ids=lambda v: getattr(v, "__name__", v))
def test_every_step_from_every_state(store, handling, people, make, state, action, actor, expected) -> None:
    cid = make(state)
    before = handling.state(cid)
    messages_before = len(store.messages(cid))
    if isinstance(expected, type):
        with pytest.raises(expected):
            act(handling, action, cid, people[actor])
        assert handling.state(cid) == before  # a refused step changes nothing
        assert len(store.messages(cid)) == messages_before
        return
    act(handling, action, cid, people[actor])
    after = handling.state(cid)
    assert (after.handling, after.agent_name) == expected
    assert after.agent_id == (people[expected[1]].id if expected[1] else None)


def test_held_error_names_the_holder(handling, people, make) -> None:
    cid = make("open")
    with pytest.raises(ConversationHeldError) as caught:
        handling.claim(cid, people["bob"])
    assert caught.value.holder == "alice" and str(caught.value).startswith("alice has it")


def test_forbidden_says_who_holds_it(handling, people, make) -> None:
    cid = make("open")
    with pytest.raises(ForbiddenError, match=r"alice has conversation \w+; only alice or an admin may hand back"):
        handling.hand_back(cid, people["bob"])


def test_claim_marks_the_waiting_episode_assigned_and_the_legacy_status(store, handling, alice, clock) -> None:
    cid = pending_conversation(store, clock, waited_minutes=3)
    info = handling.state(cid)
    assert (info.handling, info.reason, info.pending_since) == (
        "pending",
        "customer asked for a human",
        timestamp(clock() - timedelta(minutes=3)),
    )
    clock.advance(seconds=5)
    info = handling.claim(cid, alice)
    assert (info.handling, info.agent_name, info.pending_since) == ("open", "alice", None)
    [episode] = store.handoffs(cid)
    assert (episode["status"], episode["agent_id"], episode["claimed_at"]) == ("assigned", alice.id, timestamp(clock()))
    row = store.conversation(cid)
    assert (row["status"], row["handling_changed_at"]) == ("handoff", timestamp(clock()))
    assert handling.claim(cid, alice) == info  # claiming it again changes nothing
    assert len(store.handoffs(cid)) == 1


def test_take_over_of_a_bot_conversation_starts_an_episode(store, handling, bob) -> None:
    cid = store.create_conversation()
    bot_id = bot_turn(store, cid)
    info = handling.take_over(cid, bob)
    assert (info.handling, info.agent_name, info.reason) == ("open", "bob", "agent took over")
    [episode] = store.handoffs(cid)
    assert (episode["status"], episode["reason"], episode["agent_id"], episode["message_id"]) == (
        "assigned",
        "agent took over",
        bob.id,
        bot_id,
    )
    assert store.conversation(cid)["status"] == "handoff"


def test_take_over_of_a_resolved_conversation_reopens_it_without_the_old_tags(store, handling, alice, bob) -> None:
    cid = pending_conversation(store)
    handling.resolve(cid, alice, ["refund"])
    info = handling.take_over(cid, bob)
    assert (info.handling, info.agent_name, info.tags) == ("open", "bob", ())
    assert [(e["status"], e["outcome"]) for e in store.handoffs(cid)] == [("closed", "resolved"), ("assigned", None)]


def test_hand_back_closes_the_episode_and_lets_the_bot_answer_again(store, handling, alice, clock) -> None:
    cid = pending_conversation(store)  # state: handed_off, 2 failures, an order number
    handling.claim(cid, alice)
    clock.advance(minutes=4)
    info = handling.hand_back(cid, alice)
    assert (info.handling, info.agent_id, info.reason) == ("bot", None, None)
    state = store.load_state(cid)
    assert (state.handed_off, state.failures, state.slots) == (False, 0, {"order_id": "#123"})
    [episode] = store.handoffs(cid)
    assert (episode["status"], episode["outcome"], episode["closed_at"]) == (
        "closed",
        "handed_back",
        timestamp(clock()),
    )
    assert store.conversation(cid)["status"] == "open"


def test_resolve_stores_the_tags_and_closes_the_episode(store, handling, alice, clock) -> None:
    cid = pending_conversation(store)
    handling.claim(cid, alice)
    info = handling.resolve(cid, alice, [" refund ", "late delivery", "refund"])
    assert (info.handling, info.agent_id, info.tags) == ("resolved", None, ("refund", "late delivery"))
    assert info.reason == "customer asked for a human"  # the last episode's, still shown
    row = store.conversation(cid)
    assert row["status"] == "closed" and store.load_state(cid).handed_off is False
    [episode] = store.handoffs(cid)
    assert (episode["status"], episode["outcome"], episode["agent_id"]) == ("closed", "resolved", alice.id)


def test_resolving_a_pending_conversation_credits_the_resolver(store, handling, bob) -> None:
    cid = pending_conversation(store)
    handling.resolve(cid, bob, [])
    [episode] = store.handoffs(cid)
    assert (episode["agent_id"], episode["claimed_at"], episode["outcome"]) == (bob.id, None, "resolved")


@pytest.mark.parametrize(
    "tags",
    [["x" * 41], [""], ["   "], ["no/slash"], ["a<b"], [str(i) for i in range(11)], "refund", [3]],
)
def test_bad_tags_are_refused_before_anything_changes(store, handling, alice, tags) -> None:
    cid = pending_conversation(store)
    with pytest.raises(InvalidAgentInputError):
        handling.resolve(cid, alice, tags)
    assert handling.state(cid).handling == "pending"


def test_assign_needs_a_known_enabled_agent(store, handling, accounts, alice, bob, boss) -> None:
    cid = pending_conversation(store)
    with pytest.raises(UnknownAgentError):
        handling.assign(cid, "nobody", by=boss)
    accounts.disable("bob")
    with pytest.raises(InvalidAgentInputError, match="bob is disabled"):
        handling.assign(cid, "bob", by=boss)
    assert handling.state(cid).handling == "pending"
    info = handling.assign(cid, "ALICE", by=boss)
    assert (info.handling, info.agent_name) == ("open", "alice")
    assert store.handoffs(cid)[0]["agent_id"] == alice.id


def test_reassigning_moves_the_episode_to_the_new_holder(store, handling, alice, bob, boss) -> None:
    cid = pending_conversation(store)
    handling.claim(cid, alice)
    handling.assign(cid, "bob", by=boss)
    assert handling.state(cid).agent_name == "bob"
    assert store.handoffs(cid)[0]["agent_id"] == bob.id
    handling.send(cid, bob, "Bob here.")  # the new holder may write


def test_unknown_conversations_are_typed_errors(handling, alice) -> None:
    for step in (handling.state, lambda c: handling.claim(c, alice), lambda c: handling.send(c, alice, "hi")):
        with pytest.raises(UnknownConversationError):
            step("nope")


def test_a_pending_conversation_without_an_episode_gets_one_when_claimed(store, handling, alice) -> None:
    # stores from before the panel: handoff status migrated to pending, no waiting row
    cid = store.create_conversation()
    store.db.execute("update conversations set handling = 'pending', handling_changed_at = updated_at")
    handling.claim(cid, alice)
    [episode] = store.handoffs(cid)
    assert (episode["status"], episode["agent_id"], episode["reason"]) == ("assigned", alice.id, "handoff")


# -- send ---------------------------------------------------------------------------


def test_send_writes_the_agent_message_and_the_first_response(store, handling, alice, clock) -> None:
    cid = pending_conversation(store)
    clock.advance(minutes=2)
    message_id = handling.send(cid, alice, "  Hi, Alice here. Let me check.  ")
    last = store.messages(cid)[-1]
    assert (last["id"], last["role"], last["text"], last["agent_id"], last["turn"]) == (
        message_id,
        "agent",
        "Hi, Alice here. Let me check.",
        alice.id,
        2,
    )
    assert last["suggestion_id"] is None and last["edited_from"] is None
    assert store.conversation(cid)["updated_at"] == timestamp(clock())
    first = timestamp(clock())
    clock.advance(minutes=1)
    handling.send(cid, alice, "Found it.")
    [episode] = store.handoffs(cid)
    assert (episode["first_response_at"], episode["claimed_at"]) == (first, first)  # claimed by sending


@pytest.mark.parametrize("text", ["", "   \n", "x" * 4001, None, 42, ["hi"]])
def test_send_refuses_empty_long_and_non_text(store, handling, alice, text) -> None:
    cid = pending_conversation(store)
    with pytest.raises(InvalidAgentInputError):
        handling.send(cid, alice, text)
    assert handling.state(cid).handling == "pending" and len(store.messages(cid)) == 2


def test_send_accepts_4000_characters(store, handling, alice) -> None:
    cid = pending_conversation(store)
    handling.send(cid, alice, "y" * 4000)
    assert len(store.messages(cid)[-1]["text"]) == 4000


def shown(store, cid: str, agent: Agent, *texts: str) -> list[int]:
    customer = next(m for m in reversed(store.messages(cid)) if m["role"] == "customer")
    drafts = [SuggestionDraft("retrieved", "retrieval", t, (("kb-1", 0.9),), 0.9) for t in texts]
    return SuggestionLog(store).log_shown(cid, customer["id"], agent, drafts)


def test_sending_a_suggestion_as_is_marks_it_sent(store, handling, alice, clock) -> None:
    cid = pending_conversation(store)
    sid, other = shown(store, cid, alice, "Your order ships tomorrow.", "Sorry about that.")
    clock.advance(seconds=30)
    message_id = handling.send(cid, alice, "Your order ships tomorrow.", suggestion_id=sid)
    last = store.messages(cid)[-1]
    assert (last["suggestion_id"], last["edited_from"]) == (sid, None)
    row = SuggestionLog(store).get(sid)
    assert (row["outcome"], row["final_text"], row["message_id"], row["decided_at"]) == (
        "sent",
        "Your order ships tomorrow.",
        message_id,
        timestamp(clock()),
    )
    assert SuggestionLog(store).get(other)["outcome"] == "shown"


def test_sending_an_edited_suggestion_keeps_the_original_as_edited_from(store, handling, alice) -> None:
    cid = pending_conversation(store)
    [sid] = shown(store, cid, alice, "Your order ships tomorrow.")
    handling.send(cid, alice, "Your order ships tomorrow morning.", suggestion_id=sid)
    last = store.messages(cid)[-1]
    assert (last["text"], last["edited_from"]) == ("Your order ships tomorrow morning.", "Your order ships tomorrow.")
    row = SuggestionLog(store).get(sid)
    assert (row["outcome"], row["final_text"]) == ("edited", "Your order ships tomorrow morning.")


def test_a_suggestion_is_sent_once_and_only_in_its_conversation(store, handling, alice) -> None:
    cid = pending_conversation(store)
    elsewhere = pending_conversation(store)
    [sid] = shown(store, cid, alice, "Your order ships tomorrow.")
    with pytest.raises(UnknownSuggestionError):
        handling.send(elsewhere, alice, "Your order ships tomorrow.", suggestion_id=sid)
    with pytest.raises(UnknownSuggestionError):
        handling.send(cid, alice, "text", suggestion_id=999)
    with pytest.raises(InvalidAgentInputError):
        handling.send(cid, alice, "text", suggestion_id="1")  # type: ignore[arg-type]
    assert handling.state(elsewhere).handling == "pending"  # the refused send claimed nothing
    handling.send(cid, alice, "Your order ships tomorrow.", suggestion_id=sid)
    with pytest.raises(InvalidTransitionError, match="sent already"):
        handling.send(cid, alice, "Your order ships tomorrow.", suggestion_id=sid)
    assert [m["role"] for m in store.messages(cid)].count("agent") == 1


def test_send_refuses_a_placeholder_left_unfilled_and_names_it(store, handling, alice) -> None:
    cid = pending_conversation(store)
    with pytest.raises(InvalidAgentInputError, match=r"fill in \{\{Delivery Date\}\}, \{\{Order Number\}\}"):
        handling.send(cid, alice, "Order {{Order Number}} arrives on {{Delivery Date}}.")
    assert len(store.messages(cid)) == 2
    handling.send(cid, alice, "Order #123 arrives on Friday.")
    assert store.messages(cid)[-1]["text"] == "Order #123 arrives on Friday."
