"""`csbot serve` as a user runs it: the installed console script in a subprocess, on a
free 127.0.0.1 port, talked to with httpx, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.bot.server.conftest import copy_workspace
from tests.helpers import CSBOT, REPO, run_csbot
from tests.serving import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_serve_answers_over_http_and_stops_cleanly_on_ctrl_c(server_workspace, tmp_path):
    workspace = copy_workspace(server_workspace, tmp_path / "ws")
    port = free_port()
    env = {
        **os.environ,
        "CSBOT_CORS_ORIGINS": "https://shop.example.com",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    log_path = tmp_path / "serve.log"  # a file, not a pipe: an unread pipe would block the server's logging
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(CSBOT), "serve", "--workspace", str(workspace), "--port", str(port), "--workers", "2"],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        with httpx.Client(base_url=base, timeout=30) as client:
            while True:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "not ready in 180 s"
                try:
                    r = client.get("/readyz")
                    if r.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.3)
            assert r.json() == {"status": "ready", "workers": 2}
            created = client.post("/api/v1/conversations").json()
            reply = client.post(
                f"/api/v1/conversations/{created['conversation_id']}/messages",
                headers={"X-Conversation-Token": created["access_token"]},
                json={"text": "can I pay with paypal?"},
            ).json()
            assert "PayPal" in reply["reply"]
            preflight = client.options(
                "/api/v1/conversations",
                headers={"Origin": "https://shop.example.com", "Access-Control-Request-Method": "POST"},
            )
            assert preflight.headers["access-control-allow-origin"] == "https://shop.example.com"
            assert client.get("/demo").status_code == 200  # the widget's router is mounted
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        output = log_path.read_text()
        assert proc.returncode == 0, output
        assert f"serving {workspace}" in output.replace("\n", "")
        assert "Traceback" not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_a_workspace_that_is_not_built(tmp_path):
    proc = run_csbot("serve", workspace=tmp_path / "nothing", check=False)
    assert proc.returncode == 1
    assert "run `csbot build" in proc.stderr


def test_serve_refuses_bad_settings_naming_them(tmp_path):
    proc = run_csbot("serve", "--port", "70000", workspace=tmp_path, check=False)
    assert proc.returncode == 1 and "port" in proc.stderr
