"""A real csbot HTTP server for the API tests: `create_app` on a real workspace (a copy of
the demo one), served by uvicorn on a free 127.0.0.1 port in a thread, driven with httpx."""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from bot.server.app import create_app
from bot.settings import CsbotSettings
from bot.store import ConversationStore
from bot.workspace import Assistant
from tests.postgres import PostgresServer, postgres_bin_dir
from tests.serving import copy_workspace


@dataclass
class LiveServer:
    url: str
    settings: CsbotSettings
    client: httpx.Client
    app: FastAPI | None = None  # the app being served (its runtime shows queues and streams)
    # conversation id -> its access token, for the conversations this test started
    tokens: dict[str, str] = field(default_factory=dict)

    def store(self) -> ConversationStore:
        """A connection of the test's own to the server's store (WAL: both may use it)."""
        return ConversationStore(self.settings.store_target).open()

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.client.get("/readyz")
            if r.status_code == 200:
                return
            if r.json().get("status") == "failed":
                raise AssertionError(f"the server failed to load: {r.json()}")
            time.sleep(0.2)
        raise AssertionError("the server did not get ready in time")

    def new_conversation(self) -> str:
        r = self.client.post("/api/v1/conversations", json={"channel": "web"})
        assert r.status_code == 201, r.text
        conversation_id = r.json()["conversation_id"]
        self.tokens[conversation_id] = r.json()["access_token"]
        return conversation_id

    def auth(self, conversation_id: str) -> dict[str, str]:
        """The header that opens a conversation this test started."""
        return {"X-Conversation-Token": self.tokens[conversation_id]}

    def say(self, conversation_id: str, text: str, **extra) -> httpx.Response:
        return self.client.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"text": text, **extra},
            headers=self.auth(conversation_id),
        )

    def get(self, conversation_id: str, path: str = "", **kwargs) -> httpx.Response:
        """GET /api/v1/conversations/{id}{path} with the conversation's token."""
        return self.client.get(
            f"/api/v1/conversations/{conversation_id}{path}", headers=self.auth(conversation_id), **kwargs
        )

    def post(self, conversation_id: str, path: str, body: dict) -> httpx.Response:
        """POST /api/v1/conversations/{id}{path} with the conversation's token."""
        return self.client.post(
            f"/api/v1/conversations/{conversation_id}{path}", json=body, headers=self.auth(conversation_id)
        )


@contextmanager
def live_server(
    settings: CsbotSettings, assistant_factory: Callable[[], Assistant] | None = None, wait_ready: bool = True
) -> Iterator[LiveServer]:
    """Serve `create_app(settings)` on a socket bound here (no port race) until the block ends."""
    app = create_app(settings, assistant_factory)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=60) as client:
        live = LiveServer(url, settings, client, app)
        try:
            if wait_ready:
                live.wait_ready()
            yield live
        finally:
            app.state.runtime.begin_shutdown()  # what `csbot serve` does on Ctrl-C
            server.should_exit = True
            thread.join(timeout=60)
            sock.close()


def quiet_settings(workspace: Path, **server: object) -> CsbotSettings:
    """Settings for tests: limits off unless a test turns them on, fast event polling;
    `server` fields override these."""
    values = {
        "rate_limit_per_ip": 0,
        "rate_limit_per_session": 0,
        "events_poll_seconds": 0.05,
        "events_ping_seconds": 0.5,
        "cors_origins": [],
    }
    values.update(server)
    return CsbotSettings(workspace=workspace, server=values, database_url=_test_database_url())


_postgres: list[PostgresServer] = []  # the one throwaway server of CSBOT_TEST_STORE=postgresql


def _test_database_url() -> str | None:
    """None (the workspace's SQLite file), or with CSBOT_TEST_STORE=postgresql a fresh
    database on one throwaway PostgreSQL server for the whole run: how the server suite is
    run on the PostgreSQL store (`CSBOT_TEST_STORE=postgresql pytest tests/bot/server`; CI
    runs the store, agent, channel and topology tests on both, not this whole suite)."""
    if os.environ.get("CSBOT_TEST_STORE", "sqlite") != "postgresql":
        return None
    if not _postgres:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            pytest.fail("CSBOT_TEST_STORE=postgresql needs PostgreSQL's binaries (apt-get install postgresql)")
        server = PostgresServer(bin_dir)
        server.start()
        atexit.register(server.close)
        _postgres.append(server)
    return _postgres[0].create_database()


@pytest.fixture(scope="session")
def server_workspace(demo_workspace, tmp_path_factory) -> Path:
    return copy_workspace(demo_workspace, tmp_path_factory.mktemp("server") / "ws")


@pytest.fixture(scope="session")
def api(server_workspace) -> Iterator[LiveServer]:
    """The shared server: default body limit, no rate limits, one inference worker."""
    with live_server(quiet_settings(server_workspace)) as live:
        yield live


def sse_events(response: httpx.Response) -> Iterator[dict]:
    """Parse a text/event-stream body as it arrives: {"event", "data", "id"} per event,
    {"comment": text} per comment line."""
    import json

    event: dict = {}
    for line in response.iter_lines():
        if line == "":
            if event:
                event.setdefault("event", "message")
                yield event
                event = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                event["data"] = json.loads(value)
            elif field in ("event", "id"):
                event[field] = value


def next_event(events: Iterator[dict], name: str, timeout: float = 30.0) -> dict:
    """The next event called `name` of an `sse_events` stream, skipping the others; fails
    when none comes within `timeout` seconds or the stream ends first."""
    deadline = time.monotonic() + timeout
    for item in events:
        if item.get("event") == name:
            return item
        assert time.monotonic() < deadline, f"no {name} event in {timeout} s"
    raise AssertionError(f"the stream ended before a {name} event")


@contextmanager
def unloaded_server(settings: CsbotSettings) -> Iterator[LiveServer]:
    """The real app whose assistant never loads: for what must answer before any model
    is needed (CORS, the IP rate limit, the body limit, 503 while loading)."""
    gate = threading.Event()

    def never_loads() -> Assistant:
        gate.wait(120)
        raise RuntimeError("this test's server never loads an assistant")

    with live_server(settings, never_loads, wait_ready=False) as live:
        try:
            yield live
        finally:
            gate.set()
