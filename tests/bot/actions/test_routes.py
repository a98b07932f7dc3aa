"""actions.json: the demo's routes load against the demo's domain, and a bad file says what
to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.actions.routes import ActionRoute, ActionRoutes, ActionRoutesError
from bot.domain import Domain

DATA = Path(__file__).resolve().parents[3] / "data"


def test_the_demo_routes_load_against_the_demo_domain():
    domain = Domain.load(DATA / "domain.json")
    routes = ActionRoutes.load(DATA / "actions.json", domain.slot_questions)
    assert routes is not None
    assert routes.for_intent("order_status") == ActionRoute("action_order_status", ("order_id", "email"))
    # "how do returns work?" stays a policy answer until an order number is known
    start_return = routes.for_intent("return_item")
    assert start_return is not None and start_return.when_slots == ("order_id",)
    assert not start_return.applies({}) and start_return.applies({"order_id": "#1"})
    assert routes.for_intent("payment_methods") is None


def test_routes_survive_the_copy_a_build_writes():
    routes = ActionRoutes.load(DATA / "actions.json")
    assert routes is not None and ActionRoutes.from_json(routes.to_json()) == routes


def test_no_file_means_no_actions(tmp_path):
    assert ActionRoutes.load(tmp_path / "actions.json") is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"intents": {"order_status": {}}}, "intent 'order_status' needs an \"action\" name"),
        ({"intents": {"x": {"action": "a", "required_slots": ["colour"]}}}, "slot_questions has no question for it"),
        ({"intents": {"x": {"action": "a", "when_slots": "order_id"}}}, "when_slots must be a list of slot names"),
        ({"intents": {}, "timeout": 3}, "unknown key(s) timeout"),
        ({"intents": {}, "fallback_message": " "}, "fallback_message must be a non-empty text"),
    ],
)
def test_a_bad_routes_file_names_what_to_fix(tmp_path, data, message):
    path = tmp_path / "actions.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ActionRoutesError) as e:
        ActionRoutes.load(path, Domain().slot_questions)
    assert message in str(e.value) and str(path) in str(e.value)
