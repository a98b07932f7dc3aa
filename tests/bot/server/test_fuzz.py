"""A schema-driven fuzz of the HTTP API: schemathesis reads /openapi.json and generates
requests for every operation, valid ones and invalid ones. No request gets a 500, every
error body has a stable code, and no turn is ever stored half (a customer message
without its reply)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.bot.server.conftest import LiveServer

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 15


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_generated_request_gets_a_500_or_stores_half_a_turn(api: LiveServer, mode: GenerationMode):
    # one real conversation the generated calls are pointed at, so that they pass the
    # token check and reach the routes behind it
    cid = api.new_conversation()
    api.say(cid, "hello")
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/events"):
            continue  # a live stream never ends by itself; its bad input is tested in test_streaming.py
        if operation.method.upper() == "DELETE":
            continue  # erasing the conversation would leave the other operations nothing to reach
        scoped = "{conversation_id}" in operation.path
        strategy = operation.as_strategy(
            mode,
            path_parameters={"conversation_id": cid} if scoped else None,
            headers=api.auth(cid) if scoped else None,
        )

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def no_500(case) -> None:
            response = case.call_and_validate(base_url=api.url, checks=[not_a_server_error], timeout=60)
            if response.status_code >= 400:
                body = response.json()
                # called at once, in this iteration: the loop variable is the current one
                assert isinstance(body["code"], str) and body["detail"], (operation.label, body)  # noqa: B023

        try:
            no_500()
        except Unsatisfiable:  # nothing to get wrong: an operation without parameters or body
            assert mode == GenerationMode.NEGATIVE, operation.label
            continue
        checked.append(operation.label)
    # valid input: every operation but the two skipped above; invalid input: at least the
    # seven that take a body or a query (messages, stream, history, feedback, CSAT, new
    # conversation, the Rasa webhook)
    assert len(checked) >= (7 if mode == GenerationMode.NEGATIVE else 10), checked
    with api.store() as store:
        roles = [m["role"] for m in store.messages(cid)]
    assert roles == ["customer", "bot"] * (len(roles) // 2)
