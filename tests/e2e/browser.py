"""What the browser tests share: Chromium from the Debian package, a real `csbot serve` on a
free 127.0.0.1 port, and a tiny JSON client for the setup steps that need no browser."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
READY_TIMEOUT_S = 180
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium chromium-driver)"
    ),
]


def http(
    method: str, url: str, body: dict | None = None, token: str | None = None, timeout: float = 60
) -> tuple[int, dict]:
    """(status, JSON body) of one request; `token` goes in X-Conversation-Token."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Conversation-Token"] = token
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@contextmanager
def csbot_serve(workspace: Path, log_path: Path, **env: str) -> Iterator[str]:
    """`csbot serve` on `workspace` until the block ends; yields its base URL once /readyz
    answers 200. `env`: CSBOT_* settings for the test (rate limits, polling, ...)."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env}
    server = serving.start_serve(workspace, log_path, env=environment)
    try:
        try:
            server.wait_ready(READY_TIMEOUT_S)
        except serving.ServingError as e:
            pytest.fail(str(e))
        yield server.url
    finally:
        server.stop()
