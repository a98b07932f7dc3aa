"""The pure parts of csbot's Rasa action server: the tracker read as a csbot turn, the
sources payload, the handoff marks, and the lazy per-process holder (one load, one caller
at a time, a failed load retried only after a while). The real server process is driven in
tests/e2e/test_rasa_action_server.py."""

from __future__ import annotations

import asyncio
import threading

import pytest
from rasa_sdk import Tracker

from bot.errors import CsbotError
from bot.rasa_actions import (
    HANDOFF_SLOT,
    UNAVAILABLE_REPLY,
    ActionGroundedReply,
    ActionHandoff,
    AssistantHolder,
    AssistantUnavailableError,
    answer_tracker,
    handoff_for_tracker,
    handoff_reply,
    history_from_events,
    latest_text,
    sources_payload,
    tracker_slots,
)
from retrieval.types import Hit, Unit


def tracker(text: str, intent: str = "nlu_fallback") -> Tracker:
    return Tracker.from_dict(
        {
            "sender_id": "c1",
            "slots": {},
            "latest_message": {"text": text, "intent": {"name": intent, "confidence": 0.4}},
            "events": [],
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def failing_holder(clock: Clock | None = None) -> tuple[AssistantHolder, list[int]]:
    loads: list[int] = []

    def load() -> object:
        loads.append(1)
        raise CsbotError("workspace /nowhere has no workspace.json: run `csbot build --workspace /nowhere` first")

    return AssistantHolder(load, retry_after_s=30, clock=clock or Clock()), loads


def test_the_actions_are_named_as_rasa_calls_them():
    assert ActionGroundedReply().name() == "action_grounded_reply"
    assert ActionHandoff().name() == "action_handoff"


def test_latest_text_reads_only_a_text_message():
    assert latest_text({"text": "where is my order?"}) == "where is my order?"
    assert latest_text({"text": None, "intent": {}}) == ""
    assert latest_text(None) == ""


def test_tracker_slots_keep_text_and_number_values_and_add_what_the_message_gives():
    slots = {"email": "ann@example.com", "order_id": None, "requested_slot": "", "count": 3, "flag": True}
    values = tracker_slots(slots, "it's order #40318275, card 4111 1111 1111 1111")
    assert values["email"] == "ann@example.com"
    assert values["count"] == "3"
    assert "flag" not in values and "requested_slot" not in values
    assert values["order_id"] == "#40318275"  # as the dialogue manager keeps it
    # a card number is kept as its last four digits only, as the dialogue manager keeps it
    assert "4111 1111" not in values["card_number"] and values["card_number"].endswith("1111")


def test_history_is_the_user_and_bot_turns_before_the_latest_message():
    events = [
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": "hi"},
        {"event": "bot", "text": "Hello! How can I help?"},
        {"event": "slot", "name": "x", "value": 1},
        {"event": "user", "text": "my card is 4111 1111 1111 1111"},
        {"event": "bot", "text": ""},
        {"event": "user", "text": "can I pay with paypal?"},
    ]
    history = history_from_events(events, turns=6)
    assert [role for role, _ in history] == ["customer", "bot", "customer"]
    assert history[0] == ("customer", "hi")
    assert "4111 1111 1111 1111" not in history[2][1]
    assert history_from_events(events, turns=1) == (history[2],)
    assert history_from_events(events, turns=0) == ()
    assert history_from_events([], turns=6) == ()


def hit(unit_id: str, score: float, kind: str = "transcript", title: str | None = None) -> Hit:
    return Hit(Unit(id=unit_id, kind=kind, text="t", reply="r", title=title), score)  # type: ignore[arg-type]


def test_sources_list_the_used_units_first_with_kb_titles():
    hits = [hit("c1#t0", 0.81234), hit("kb-pay#c0", 0.7, "kb", "Accepted payment methods"), hit("c2#t1", 0.6)]
    payload = sources_payload(hits, ["kb-pay#c0"], k=2)
    assert payload == [
        {"id": "kb-pay#c0", "score": 0.7, "kind": "kb", "title": "Accepted payment methods", "used": True},
        {"id": "c1#t0", "score": 0.8123, "kind": "transcript", "title": None, "used": False},
    ]


def test_a_handoff_sets_the_slot_and_says_why():
    reply = handoff_reply("A person will be with you shortly.", "human_handoff")
    assert reply.text == "A person will be with you shortly."
    assert reply.custom == {"handoff": True, "reason": "the customer asked for a human (Rasa intent human_handoff)"}
    assert reply.events == [{"event": "slot", "timestamp": None, "name": HANDOFF_SLOT, "value": True}]
    assert handoff_reply("m", None).custom["reason"] == "the Rasa assistant asked for a human"


def test_the_holder_loads_once_even_when_two_threads_ask_at_once():
    loads: list[int] = []
    loading = threading.Event()
    release = threading.Event()

    def load() -> str:
        loads.append(1)
        loading.set()
        release.wait(timeout=10)
        return "assistant"

    holder = AssistantHolder(load)
    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(holder.call(lambda a: f"{a} 1")))
    first.start()
    assert loading.wait(timeout=10)
    second = threading.Thread(target=lambda: results.append(holder.call(lambda a: f"{a} 2")))
    second.start()
    release.set()
    first.join(timeout=10)
    second.join(timeout=10)
    assert sorted(results) == ["assistant 1", "assistant 2"]
    assert loads == [1]


def test_a_failed_load_is_retried_only_after_retry_after_s():
    clock = Clock()
    holder, loads = failing_holder(clock)
    with pytest.raises(AssistantUnavailableError, match=r"csbot build --workspace /nowhere.*CSBOT_WORKSPACE"):
        holder.call(lambda a: a)
    clock.now = 29.0
    with pytest.raises(AssistantUnavailableError):
        holder.call(lambda a: a)
    assert len(loads) == 1
    clock.now = 30.0
    with pytest.raises(AssistantUnavailableError):
        holder.call(lambda a: a)
    assert len(loads) == 2


def test_a_holder_that_loads_after_failing_keeps_the_assistant():
    clock = Clock()
    attempts: list[int] = []

    def load() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk unavailable")
        return "assistant"

    holder = AssistantHolder(load, retry_after_s=5, clock=clock)
    with pytest.raises(AssistantUnavailableError, match="OSError: disk unavailable"):
        holder.call(lambda a: a)
    clock.now = 5.0
    assert holder.call(lambda a: a) == "assistant"
    clock.now = 100.0
    assert holder.call(lambda a: a) == "assistant"
    assert len(attempts) == 2


def test_an_unloadable_workspace_gets_the_polite_reply_and_a_logged_error(caplog):
    holder, _ = failing_holder()
    with caplog.at_level("ERROR", logger="bot.rasa_actions"):
        reply = asyncio.run(answer_tracker(holder, tracker("can I pay with paypal?")))
    assert reply.text == UNAVAILABLE_REPLY
    assert reply.custom == {"action": "fallback", "error": "csbot_unavailable", "sources": []}
    assert reply.events == []
    assert "run `csbot build --workspace /nowhere` first" in caplog.text


def test_an_unloadable_workspace_still_hands_off_with_the_default_message():
    holder, _ = failing_holder()
    reply = asyncio.run(handoff_for_tracker(holder, tracker("a human please", intent="human_handoff")))
    assert reply.text.startswith("I'm connecting you with a member of our support team")
    assert reply.custom["handoff"] is True


class BrokenAssistant:
    """An assistant whose every turn raises, as a composer that falls over would."""

    @property
    def config(self) -> object:
        raise RuntimeError("the composer fell over")


def test_a_turn_that_raises_gets_the_polite_reply_and_the_traceback_is_logged(caplog):
    holder = AssistantHolder(BrokenAssistant)
    with caplog.at_level("ERROR", logger="bot.rasa_actions"):
        reply = asyncio.run(answer_tracker(holder, tracker("can I pay with paypal?")))
    assert reply.text == UNAVAILABLE_REPLY
    assert reply.custom["error"] == "csbot_failed"
    assert "RuntimeError: the composer fell over" in caplog.text
