"""Helpers for the agent panel's API tests: a server of the test module's own (so signing
in, throttling and moving the clock never disturb the shared `api` server), agents made
in its store, and one signed-in browser per agent (its own cookie jar)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bot.agents.accounts import AgentAccounts
from tests.bot.server.conftest import LiveServer, copy_workspace, live_server, quiet_settings

PASSWORD = "correct horse battery"
PANEL = "/api/v1/agent"


class MovableClock:
    """The app's agent clock (`app.state.agent_clock`): the wall clock plus an offset that
    a test moves to make sessions expire without waiting."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class PanelServer:
    live: LiveServer
    clock: MovableClock

    @property
    def url(self) -> str:
        return self.live.url

    def add_agent(self, role: str = "agent", name: str | None = None, password: str = PASSWORD) -> str:
        """A new agent in the server's store; returns the name."""
        name = name or f"{role}-{uuid.uuid4().hex[:8]}"
        with self.live.store() as store:
            AgentAccounts(store).add(name, password, role)
        return name

    def browser(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, headers=headers)

    def sign_in(self, name: str, password: str = PASSWORD, **headers: str) -> Browser:
        client = self.browser(**headers)
        r = client.post(f"{PANEL}/session", json={"name": name, "password": password})
        assert r.status_code == 200, r.text
        return Browser(client, r.json()["csrf_token"], r.json())

    def new_agent(self, role: str = "agent") -> Browser:
        return self.sign_in(self.add_agent(role))


@dataclass
class Browser:
    """One agent's signed-in browser: the session cookie in its jar, the CSRF token at hand."""

    client: httpx.Client
    csrf: str
    session: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.session["agent"]["name"])

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(PANEL + path, **kwargs)

    def post(self, path: str, body: dict | None = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(PANEL + path, json=body, headers={"X-CSRF-Token": self.csrf}, **kwargs)

    def delete(self, path: str) -> httpx.Response:
        return self.client.delete(PANEL + path, headers={"X-CSRF-Token": self.csrf})


@contextmanager
def panel_server(demo_workspace: Path, tmp: Path, **server: object) -> Iterator[PanelServer]:
    """A live server on a private copy of the demo workspace, with a movable agent clock.
    127.0.0.1 is a trusted proxy, so a test can speak from another address with
    X-Forwarded-For."""
    workspace = copy_workspace(demo_workspace, tmp / "ws")
    settings = quiet_settings(workspace, trusted_proxies=["127.0.0.1"], **server)
    with live_server(settings) as live:
        assert live.app is not None
        clock = MovableClock()
        live.app.state.agent_clock = clock
        yield PanelServer(live, clock)


def handed_off(live: LiveServer) -> str:
    """A conversation whose customer asked for a human through the public API (the demo
    domain hands `human_agent` over); now pending in the agents' queue."""
    cid = live.new_conversation()
    reply = live.say(cid, "I want to talk to a human")
    assert reply.status_code == 200, reply.text
    assert reply.json()["action"] == "handoff", reply.json()
    return cid
