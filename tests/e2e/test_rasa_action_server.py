"""csbot's Rasa action server as a Rasa assistant meets it: the real `python -m rasa_sdk
--actions bot.rasa_actions` process on a free 127.0.0.1 port, driven over HTTP with the
request a Rasa server sends (a minimal tracker), on a copy of the demo workspace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import rasa_sdk

from bot.domain import Domain
from bot.rasa_actions import HANDOFF_SLOT, UNAVAILABLE_REPLY
from tests.bot.server.conftest import copy_workspace
from tests.helpers import last_json, run_csbot
from tests.serving import free_port, stop_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUESTION = "can I pay with paypal?"


@dataclass
class ActionServer:
    client: httpx.Client
    log: Path

    def call(self, action: str, text: str, intent: str = "nlu_fallback", events: list | None = None) -> httpx.Response:
        """POST /webhook as Rasa does: the action to run and the conversation's tracker."""
        return self.client.post(
            "/webhook",
            json={
                "next_action": action,
                "sender_id": "customer-1",
                "version": rasa_sdk.__version__,
                "tracker": {
                    "sender_id": "customer-1",
                    "slots": {},
                    "latest_message": {"text": text, "intent": {"name": intent, "confidence": 0.4}},
                    "events": events or [],
                },
                "domain": {},
            },
        )


@contextmanager
def action_server(workspace: Path, tmp_path: Path) -> Iterator[ActionServer]:
    """The real rasa-sdk server process with CSBOT_WORKSPACE=workspace; its log in a file."""
    port = free_port()
    log = tmp_path / f"action-server-{port}.log"
    env = {**os.environ, "CSBOT_WORKSPACE": str(workspace), "SANIC_HOST": "127.0.0.1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rasa_sdk", "--actions", "bot.rasa_actions", "--port", str(port)],
            cwd=tmp_path,  # no endpoints.yml there: tracing stays off
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped with its workers (stop_process ends the group)
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=180) as client:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, f"the action server exited {proc.returncode}:\n{log.read_text()}"
                try:
                    if client.get("/health").json() == {"status": "ok"}:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"no /health answer:\n{log.read_text()}"
                time.sleep(0.2)
            yield ActionServer(client, log)
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def expected(demo_workspace, tmp_path_factory) -> dict:
    """csbot's own answer to QUESTION (`csbot ask` on another copy of the workspace)."""
    ws = copy_workspace(demo_workspace, tmp_path_factory.mktemp("ask") / "ws")
    return last_json(run_csbot("ask", QUESTION, workspace=ws).stdout)


def test_the_action_server_answers_rasa_with_csbots_grounded_reply_and_hands_off(demo_workspace, expected, tmp_path):
    ws = copy_workspace(demo_workspace, tmp_path / "ws")
    with action_server(ws, tmp_path) as server:
        actions = server.client.get("/actions")
        assert actions.status_code == 200
        assert {a["name"] for a in actions.json()} == {"action_grounded_reply", "action_handoff"}

        r = server.call("action_grounded_reply", QUESTION)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["events"] == []
        [message] = body["responses"]
        # the same reply, from the same evidence, as csbot's own channel gives
        assert expected["action"] == "answer"
        assert message["text"] == expected["reply"]
        assert "PayPal" in message["text"]
        custom = message["custom"]
        assert custom["action"] == "answer"
        assert custom["intent"] == expected["intent"] == "payment_methods"
        assert [s["id"] for s in custom["sources"]] == [s["id"] for s in expected["sources"]]
        assert [s["score"] for s in custom["sources"]] == [s["score"] for s in expected["sources"]]
        assert custom["sources"][0]["used"] is True
        kb = [s for s in custom["sources"] if s["kind"] == "kb"]
        assert kb and all(s["title"] for s in kb)

        r = server.call("action_handoff", "I want to talk to a person", intent="human_handoff")
        assert r.status_code == 200, r.text
        body = r.json()
        [message] = body["responses"]
        assert message["text"] == Domain.load(ws / "domain.json").handoff_message
        assert message["custom"] == {
            "handoff": True,
            "reason": "the customer asked for a human (Rasa intent human_handoff)",
        }
        assert body["events"] == [{"event": "slot", "timestamp": None, "name": HANDOFF_SLOT, "value": True}]

        r = server.call("action_does_not_exist", QUESTION)
        assert r.status_code == 404
        assert r.json()["action_name"] == "action_does_not_exist"


def test_a_missing_workspace_gets_a_polite_reply_and_a_logged_error_and_the_server_stays_up(tmp_path):
    missing = tmp_path / "no-such-workspace"
    with action_server(missing, tmp_path) as server:
        for _ in range(2):  # the second call fails fast: loading is retried after a while only
            r = server.call("action_grounded_reply", QUESTION)
            assert r.status_code == 200, r.text
            [message] = r.json()["responses"]
            assert message["text"] == UNAVAILABLE_REPLY
            assert message["custom"] == {"action": "fallback", "error": "csbot_unavailable", "sources": []}
        # a handoff still works, with csbot's default message
        r = server.call("action_handoff", "a human please")
        assert r.json()["responses"][0]["text"] == Domain().handoff_message
        assert server.client.get("/health").status_code == 200
    log = server.log.read_text()
    assert f"workspace {missing} has no workspace.json: run `csbot build --workspace {missing}` first" in log
    assert log.count("csbot could not load its workspace") == 1
