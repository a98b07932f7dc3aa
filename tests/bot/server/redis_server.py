"""A real redis-server for the tests of state shared across replicas: started on a free
127.0.0.1 port with nothing saved to disk, and stopped (or killed) and started again on
the same port by the tests that check what happens while Redis is down."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """One redis-server process; `url` stays the same across `kill` and `start`."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, as a crash would: its data (no persistence) is gone with it."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def require_redis_server() -> None:
    """Skip when redis-server is not installed, except under CI, where it must be."""
    if not os.access(REDIS_SERVER, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail(f"redis-server is not installed at {REDIS_SERVER}; .ci/run installs it (apt redis-server)")
        pytest.skip(f"redis-server is not installed ({REDIS_SERVER}); apt-get install redis-server")


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    require_redis_server()
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
