"""Business actions inside the dialogue: fake models (tests/fakes.py), a real SQLite store,
and the real runner (rasa-sdk's ActionExecutor in process) with real actions. An action's
slots carry into the next turn; an action that fails gets an honest reply, the turn is
logged and the conversation goes on."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.backend import OrdersDatabase, build_orders_db
from bot.actions.contract import BusinessActions
from bot.actions.orders import order_actions
from bot.actions.routes import ActionRoute, ActionRoutes
from bot.actions.runner import ActionRunner
from bot.dialogue import DialogueManager
from bot.domain import Domain
from bot.settings import ActionsConfig, DialogueConfig
from bot.store import ConversationStore
from tests.bot.actions.orders_data import MINE, ORDERS, THEIR_FACTS
from tests.fakes import FakeComposer, FixedRetriever, HashingEmbedder, ScriptedClassifier, prediction

DOMAIN = Domain(slot_questions={**Domain().slot_questions, "plan": "Which plan are you on?"})
PREDICTIONS = {
    "what plan am I on? {{Email}}": prediction("subscription"),
    "cancel my plan": prediction("cancel_plan"),
    "where is order {{Order Number}}?": prediction("order_status"),
    "{{Email}}": prediction("greeting", 0.3),
    "can I pay with paypal?": prediction("payment_methods"),
    "is it broken?": prediction("broken"),
    "how do refunds work?": prediction("refund_request"),
    "refund for {{Order Number}}? {{Email}}": prediction("refund_request"),
}
ROUTES = ActionRoutes(
    {
        "subscription": ActionRoute("action_find_plan", ("email",)),
        "cancel_plan": ActionRoute("action_cancel_plan", ("plan",)),
        "order_status": ActionRoute("action_order_status", ("order_id", "email")),
        "broken": ActionRoute("action_broken"),
        "refund_request": ActionRoute("action_check_refund", ("order_id", "email"), when_slots=("order_id",)),
    },
    fallback_message="I couldn't look that up just now.",
)


class FindPlan(Action):
    def name(self) -> str:
        return "action_find_plan"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        dispatcher.utter_message(text=f"{tracker.get_slot('email')} is on Larkspur Plus.")
        return [SlotSet("plan", "Larkspur Plus")]


class CancelPlan(Action):
    def name(self) -> str:
        return "action_cancel_plan"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list:
        dispatcher.utter_message(text=f"{tracker.get_slot('plan')} is cancelled.")
        return [SlotSet("plan", None)]


class Broken(Action):
    def name(self) -> str:
        return "action_broken"

    def run(self, dispatcher, tracker, domain):
        raise RuntimeError("the orders database is down")


@pytest.fixture
def orders(tmp_path: Path) -> OrdersDatabase:
    (tmp_path / "orders.json").write_text(json.dumps(ORDERS), encoding="utf-8")
    build_orders_db(tmp_path / "orders.json", tmp_path / "orders.db")
    return OrdersDatabase(tmp_path / "orders.db")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConversationStore]:
    with ConversationStore(tmp_path / "store.db").open() as s:
        yield s


def manager(store: ConversationStore, runner: ActionRunner) -> DialogueManager:
    return DialogueManager(
        embedder=HashingEmbedder(),
        classifier=ScriptedClassifier(PREDICTIONS),
        retriever=FixedRetriever(),
        composer=FakeComposer(),
        store=store,
        domain=DOMAIN,
        config=DialogueConfig(),
        actions=BusinessActions(ROUTES, runner),
    )


@pytest.fixture
def bot(store: ConversationStore, orders: OrdersDatabase) -> Iterator[DialogueManager]:
    runner = ActionRunner(
        ActionsConfig(timeout_s=10), [FindPlan(), CancelPlan(), Broken(), *order_actions(orders, date(2026, 3, 5))]
    )
    yield manager(store, runner)
    runner.close()


def test_a_slot_an_action_sets_is_what_the_next_turn_uses(bot):
    first = bot.handle("what plan am I on? ada@example.com")
    assert (first.action, first.composer) == ("answer", "action:action_find_plan")
    assert first.reply == "ada@example.com is on Larkspur Plus."
    assert first.slots["plan"] == "Larkspur Plus"

    # cancel_plan needs the plan: the action gave it, so nothing is asked
    second = bot.handle("cancel my plan", first.conversation_id)
    assert (second.action, second.composer, second.reply) == (
        "answer",
        "action:action_cancel_plan",
        "Larkspur Plus is cancelled.",
    )
    # SlotSet(plan, None) let it go, in the stored state too
    assert "plan" not in second.slots
    assert "plan" not in bot.store.load_state(first.conversation_id).slots


def test_an_order_question_asks_for_the_email_then_answers_from_the_orders_database(bot):
    first = bot.handle("where is order #40318275?")
    assert (first.action, first.reply) == ("clarify", DOMAIN.slot_questions["email"])
    second = bot.handle(MINE, first.conversation_id)
    assert (second.action, second.intent, second.composer) == ("answer", "order_status", "action:action_order_status")
    assert "tracking number PA1234567890" in second.reply
    assert second.slots["order_status"] == "shipped"


def test_another_customers_order_is_never_shown(bot):
    first = bot.handle("where is order #55555555?")
    second = bot.handle(MINE, first.conversation_id)
    assert second.reply.startswith("I couldn't find order #55555555")
    assert not any(fact in second.reply for fact in THEIR_FACTS)
    assert "order_id" not in second.slots


def test_an_action_that_raises_gets_the_honest_reply_and_the_turn_is_logged(bot):
    result = bot.handle("is it broken?")
    assert (result.action, result.reply, result.composer) == (
        "fallback",
        "I couldn't look that up just now.",
        "action:action_broken",
    )
    assert "RuntimeError: the orders database is down" in result.note
    customer, reply = bot.store.messages(result.conversation_id)
    assert (customer["text"], reply["action"], reply["text"]) == (
        "is it broken?",
        "fallback",
        "I couldn't look that up just now.",
    )
    # the conversation goes on; a second failure in a row hands over, like any fallback
    again = bot.handle("is it broken?", result.conversation_id)
    assert again.action == "handoff"


def test_an_unreachable_action_server_gets_the_honest_reply(store):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = ActionRunner(ActionsConfig(server_url=f"http://127.0.0.1:{port}", timeout_s=2))
    try:
        result = manager(store, runner).handle("is it broken?")
    finally:
        runner.close()
    assert (result.action, result.reply) == ("fallback", "I couldn't look that up just now.")
    assert "unreachable" in result.note


def test_intents_without_a_route_are_composed_as_before(bot):
    result = bot.handle("can I pay with paypal?")
    assert result.composer == "fake"


def test_a_route_waits_for_its_when_slots_and_the_turn_is_composed_until_then(bot):
    policy = bot.handle("how do refunds work?")
    assert (policy.action, policy.composer) == ("fallback", "fake")  # composed: the fake has no hits
    task = bot.handle("refund for #33333333? ada@example.com")
    assert (task.action, task.composer) == ("answer", "action:action_check_refund")
    assert task.reply.startswith("A refund of $40.00 for order #33333333 was issued on 2026-03-10")
