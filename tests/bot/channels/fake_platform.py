"""A fake messaging platform API on 127.0.0.1: a small real HTTP server (http.server in a
thread) that records every call and answers as scripted (500 then 200, 429 with
Retry-After, Slack's 200 with {"ok": false}), so the channel worker's real httpx sends
are tested end to end. Point a platform's `*_api_base` setting at `fake.url`.

    with FakePlatform() as fake:
        fake.script("/chat.postMessage", (500, {}, b"down"), (200, {}, b'{"ok": true}'))
        ...
        assert [c.json["text"] for c in fake.calls] == [...]
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

Answer = tuple[int, dict[str, str], bytes]
OK: Answer = (200, {"Content-Type": "application/json"}, b'{"ok": true}')


@dataclass(frozen=True)
class Call:
    """One request the fake platform received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class FakePlatform:
    """The server; `calls` in arrival order, `script` queues answers per path."""

    def __init__(self, default: Answer = OK):
        self.default = default
        self.calls: list[Call] = []
        self._scripts: dict[str, deque[Answer]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, path: str, *answers: Answer) -> None:
        """Answer the next calls to `path` with `answers`, in order; the default after them."""
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(answers)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Call]:
        """The calls once there are at least `count` (AssertionError after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.calls) >= count:
                    return list(self.calls)
            time.sleep(0.02)
        raise AssertionError(f"the fake platform got {len(self.calls)} call(s), expected {count}: {self.calls}")

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, call: Call) -> Answer:
        with self._lock:
            self.calls.append(call)
            queued = self._scripts.get(call.path)
            return queued.popleft() if queued else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer_headers, answer = platform._answer(Call(self.command, self.path, headers, body))
                self.send_response(status)
                for name, value in answer_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_POST(self) -> None:
                self._serve()

            def do_GET(self) -> None:
                self._serve()

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        return Handler
