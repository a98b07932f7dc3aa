"""What the bounds tests need beyond `live_server`: the app it serves (its runtime shows
what only the server can see: turns waiting, streams open; and begins a shutdown), an
assistant whose turns wait at a gate the test opens, and raw HTTP/1.1 on a socket the
test can drop mid-request."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bot.server.runtime import Runtime
from bot.settings import CsbotSettings
from bot.workspace import Assistant
from tests.bot.server import conftest
from tests.bot.server.conftest import LiveServer


@contextmanager
def serving(
    settings: CsbotSettings, assistant_factory: Callable[[], Assistant] | None = None
) -> Iterator[tuple[LiveServer, Runtime]]:
    """`live_server`, and the runtime of the app it made."""
    with conftest.live_server(settings, assistant_factory) as live:
        assert live.app is not None
        yield live, live.app.state.runtime


class GatedAssistant:
    """Real assistants whose turns wait until the test opens the gate: the first turn
    holds the (one) inference worker for as long as the test needs."""

    def __init__(self, settings: CsbotSettings):
        self.config = settings.for_inference_worker()
        self.entered = threading.Event()
        self.opened = threading.Event()

    def factory(self) -> Assistant:
        assistant = Assistant(self.config).load()
        handle = assistant.manager.handle

        def gated(*args, **kwargs):
            self.entered.set()
            assert self.opened.wait(120), "the test never opened the gate"
            return handle(*args, **kwargs)

        assistant.manager.handle = gated
        return assistant

    def wait_entered(self) -> None:
        assert self.entered.wait(60), "no turn reached the assistant"


def until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait for something the server does on its own time (bounded)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


@dataclass
class RawResponse:
    status: int
    head: bytes
    body: bytes
    sock: socket.socket | None  # left open when the response is a stream

    def json(self) -> dict:
        return json.loads(self.body)


def send_request(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> socket.socket:
    """Send one request on a fresh connection and return the socket, answer unread (for
    a test that drops the connection while the server works on it)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return sock


def raw_request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"", keep_stream: bool = True
) -> RawResponse:
    """One request on a fresh connection. An event stream (200, text/event-stream) is
    left open with its socket when `keep_stream`; any other answer is read whole and
    its connection closed."""
    sock = send_request(port, method, path, headers, body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection before answering: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if status == 200 and b"text/event-stream" in head and keep_stream:
        return RawResponse(status, head, rest, sock)
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        rest += chunk
    sock.close()
    return RawResponse(status, head, rest, None)


def header(response: RawResponse, name: str) -> str | None:
    for line in response.head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode()
    return None
