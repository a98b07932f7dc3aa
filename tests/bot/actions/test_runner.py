"""The runner: the request JSON a Rasa action server receives, rasa-sdk's ActionExecutor in
process (off the caller's thread, even under a running event loop), and every failure as
one ActionFailedError: an action that raises or is too slow, an unreachable server."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.contract import ActionFailedError
from bot.actions.runner import ActionRunner, action_request, parse_response
from bot.settings import ActionsConfig


class Echo(Action):
    """Says what the tracker told it and remembers the intent."""

    def name(self) -> str:
        return "action_echo"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        intent = tracker.latest_message["intent"]["name"]
        dispatcher.utter_message(
            text=f"{tracker.sender_id}: {tracker.latest_message['text']} / {tracker.get_slot('order_id')} / {intent}",
            buttons=[{"title": "Yes", "payload": "yes"}],
        )
        return [SlotSet("seen_intent", intent)]


class Broken(Action):
    def name(self) -> str:
        return "action_broken"

    def run(self, dispatcher, tracker, domain):
        raise RuntimeError("database is on fire")


class Slow(Action):
    def __init__(self, release: threading.Event):
        self.release = release

    def name(self) -> str:
        return "action_slow"

    async def run(self, dispatcher, tracker, domain):
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        dispatcher.utter_message(text="finally")
        return []


def test_the_request_is_what_a_rasa_action_server_expects():
    request = action_request(
        "action_x", sender_id="c1", slots={"email": "a@b.test"}, text="hi", intent="greet", confidence=0.9, domain={}
    )
    assert request["next_action"] == "action_x"
    assert request["tracker"]["sender_id"] == "c1"
    assert request["tracker"]["slots"] == {"email": "a@b.test"}
    assert request["tracker"]["latest_message"] == {
        "text": "hi",
        "intent": {"name": "greet", "confidence": 0.9},
        "entities": [],
    }
    assert request["tracker"]["events"] == []


def test_an_action_runs_in_process_with_the_conversations_tracker():
    runner = ActionRunner(ActionsConfig(), [Echo()])
    try:
        result = runner.run(
            "action_echo", sender_id="conv-7", slots={"order_id": "#1"}, text="where?", intent="order_status"
        )
    finally:
        runner.close()
    assert result.reply == "conv-7: where? / #1 / order_status"
    assert result.buttons == ("Yes",)
    assert result.slots == {"seen_intent": "order_status"}


def test_the_runner_works_under_a_running_event_loop():
    runner = ActionRunner(ActionsConfig(), [Echo()])

    async def inside_a_loop() -> str:
        return runner.run("action_echo", sender_id="c", slots={}, text="t", intent="i").reply

    try:
        assert asyncio.run(inside_a_loop()) == "c: t / None / i"
    finally:
        runner.close()


def test_an_action_that_raises_is_a_failure_naming_the_error():
    runner = ActionRunner(ActionsConfig(), [Broken()])
    with pytest.raises(ActionFailedError, match="action_broken raised RuntimeError: database is on fire"):
        runner.run("action_broken", sender_id="c", slots={}, text="t")
    runner.close()


def test_an_action_that_takes_too_long_is_a_failure():
    release = threading.Event()
    runner = ActionRunner(ActionsConfig(timeout_s=0.05), [Slow(release)])
    try:
        with pytest.raises(ActionFailedError, match=r"took longer than 0\.05 s"):
            runner.run("action_slow", sender_id="c", slots={}, text="t")
    finally:
        release.set()
        runner.close()


def test_an_action_not_registered_is_a_failure():
    with pytest.raises(ActionFailedError, match="no action named 'action_nope'"):
        ActionRunner(ActionsConfig()).run("action_nope", sender_id="c", slots={}, text="t")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_action_server_is_a_failure():
    runner = ActionRunner(ActionsConfig(server_url=f"http://127.0.0.1:{_closed_port()}", timeout_s=2))
    try:
        with pytest.raises(ActionFailedError, match="unreachable for action_order_status"):
            runner.run("action_order_status", sender_id="c", slots={}, text="t")
    finally:
        runner.close()


def test_an_answer_without_anything_to_say_or_not_an_action_response_is_a_failure():
    with pytest.raises(ActionFailedError, match="answered nothing to say"):
        parse_response("a", {"events": [], "responses": []})
    with pytest.raises(ActionFailedError, match="not an action response"):
        parse_response("a", ["nonsense"])
