"""GET /api/v1/agent/metrics on the real app (a copy of the demo workspace, its store
filled with the hand-worked conversations of tests/bot/metrics_data.py): signed-in agents
only, the figures of `csbot report`, "today" from the app's agent clock, 422 for bad days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from bot.agents.accounts import AgentAccounts
from bot.store import ConversationStore
from tests.bot import metrics_data
from tests.bot.server.conftest import LiveServer, copy_workspace, live_server, quiet_settings

pytestmark = pytest.mark.slow

NOW = datetime(2024, 5, 3, 18, 30, tzinfo=UTC)
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def panel(demo_workspace, tmp_path_factory) -> Iterator[LiveServer]:
    """The app on a workspace of its own, whose agent clock stands at NOW."""
    workspace = copy_workspace(demo_workspace, tmp_path_factory.mktemp("metrics") / "ws")
    settings = quiet_settings(workspace)
    with ConversationStore(settings.store_target).open() as store:
        metrics_data.fill(store)
        AgentAccounts(store, clock=lambda: NOW).add("bea", PASSWORD)
    with live_server(settings) as live:
        assert live.app is not None
        live.app.state.agent_clock = lambda: NOW
        yield live


@pytest.fixture(scope="module")
def signed_in(panel) -> Iterator[httpx.Client]:
    """A client holding bea's session cookie."""
    with httpx.Client(base_url=panel.url, timeout=60) as client:
        r = client.post("/api/v1/agent/session", json={"name": "bea", "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield client


def test_without_a_session_it_is_401(panel):
    r = httpx.get(f"{panel.url}/api/v1/agent/metrics", params={"since": metrics_data.SINCE})
    assert r.status_code == 401
    assert r.json()["code"] == "not_signed_in"


def test_a_signed_in_agent_gets_the_figures_of_the_range(signed_in):
    r = signed_in.get("/api/v1/agent/metrics", params={"since": metrics_data.SINCE, "until": metrics_data.UNTIL})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["since"], body["until"]) == ("2024-05-01", "2024-05-03")
    assert body["totals"] == metrics_data.TOTALS
    assert [d["date"] for d in body["days"]] == ["2024-05-01", "2024-05-02", "2024-05-03"]
    assert body["days"][1]["handoff"]["rate"] is None  # the empty day: nothing to divide by
    assert body["handoff_intents"] == metrics_data.HANDOFF_INTENTS


def test_today_and_generated_at_come_from_the_apps_clock(signed_in):
    r = signed_in.get("/api/v1/agent/metrics", params={"since": "2024-05-03"})
    assert r.status_code == 200, r.text
    assert r.json()["until"] == "2024-05-03"
    assert r.json()["generated_at"] == "2024-05-03T18:30:00.000+00:00"
    assert r.json()["totals"]["conversations"] == 5


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"since": "2024-5-1"}, "since", "since '2024-5-1' is not a date; give it as YYYY-MM-DD"),
        ({"since": "2024-05-01", "until": "2024-02-30"}, "until", "until '2024-02-30' is not a date"),
        ({"since": "2024-05-03", "until": "2024-05-01"}, "until", "until 2024-05-01 is before since 2024-05-03"),
        ({"since": "2022-01-01"}, "until", "a report covers at most 366"),
    ],
)
def test_a_bad_day_or_range_is_422_naming_the_parameter(signed_in, params, field, message):
    r = signed_in.get("/api/v1/agent/metrics", params=params)
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "invalid_request"
    assert body["detail"][0]["loc"] == ["query", field]
    assert message in body["detail"][0]["msg"]


def test_since_is_required(signed_in):
    r = signed_in.get("/api/v1/agent/metrics")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "since"]


def test_the_route_is_in_the_openapi_document_under_agent(panel):
    operation = httpx.get(f"{panel.url}/openapi.json").json()["paths"]["/api/v1/agent/metrics"]["get"]
    assert operation["tags"] == ["agent"]
    assert {p["name"] for p in operation["parameters"]} >= {"since", "until"}
