"""Server settings (`CsbotSettings.server`): CSBOT_* environment variables, explicit values
first, clear errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.server.config import ServerConfig
from bot.settings import CsbotSettings, InvalidSettingsError


@pytest.fixture
def env(monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("CSBOT_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_are_local_and_closed(env):
    settings = CsbotSettings()
    s = settings.server
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 8000, 1)
    assert settings.workspace == Path(".csbot")
    assert s.cors_origins == []  # same origin only
    assert (s.rate_limit_per_ip, s.rate_limit_per_session, s.max_body_bytes) == (60, 20, 16384)
    assert s.stream_piece_delay_ms == 0


def test_environment_variables_set_it_and_explicit_values_win(env):
    env.setenv("CSBOT_PORT", "9000")
    env.setenv("CSBOT_WORKERS", "2")
    env.setenv("CSBOT_WORKSPACE", "/srv/ws")
    env.setenv("CSBOT_RATE_LIMIT_PER_IP", "0")
    settings = CsbotSettings()
    s = settings.server
    assert (s.port, s.workers, settings.workspace, s.rate_limit_per_ip) == (9000, 2, Path("/srv/ws"), 0)
    assert CsbotSettings(server={"port": 9001}).server.port == 9001
    assert CsbotSettings.from_env(server={"port": 9001}).server.workers == 2


@pytest.mark.parametrize(
    "raw", ["https://shop.example.com, http://localhost:3000/", '["https://shop.example.com", "http://localhost:3000"]']
)
@pytest.mark.parametrize("name", ["CSBOT_CORS_ORIGINS", "CSBOT_SERVER__CORS_ORIGINS"])
def test_cors_origins_are_a_comma_list_or_json(env, name, raw):
    env.setenv(name, raw)
    assert CsbotSettings().server.cors_origins == ["https://shop.example.com", "http://localhost:3000"]


@pytest.mark.parametrize("origin", ["shop.example.com", "https://shop.example.com/widget", "ftp://x.example"])
def test_a_cors_entry_that_is_not_an_origin_is_refused_with_the_fix(env, origin):
    env.setenv("CSBOT_CORS_ORIGINS", origin)
    with pytest.raises(ValidationError, match="scheme://host"):
        CsbotSettings()
    with pytest.raises(InvalidSettingsError, match=r"scheme://host.*CSBOT_CORS_ORIGINS"):
        CsbotSettings.from_env()


def test_a_trusted_proxy_that_is_not_a_network_is_refused_with_the_fix():
    with pytest.raises(ValidationError, match=re.escape("10.0.0.0/8")):
        ServerConfig(trusted_proxies="10.0.0.5, proxy.internal")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CSBOT_PORT", "70000"),
        ("CSBOT_WORKERS", "0"),
        ("CSBOT_MAX_BODY_BYTES", "10"),
        ("CSBOT_PORT", "eighty"),
        ("CSBOT_LOCK_LEASE_SECONDS", "0.5"),
        ("CSBOT_REPLICA_LIVE_SECONDS", "1"),
    ],
)
def test_out_of_range_values_are_refused(env, name, value):
    env.setenv(name, value)
    with pytest.raises(ValidationError):
        CsbotSettings()
    with pytest.raises(InvalidSettingsError, match=name):
        CsbotSettings.from_env()


def test_workers_share_the_cores_for_torch_unless_told():
    assert ServerConfig(workers=1).threads_per_worker(cores=2) == 2
    assert ServerConfig(workers=2).threads_per_worker(cores=2) == 1
    assert ServerConfig(workers=4).threads_per_worker(cores=2) == 1
    assert ServerConfig(workers=2, torch_threads=3).threads_per_worker(cores=2) == 3


def test_an_inference_worker_keeps_the_workspace_and_takes_the_threads_per_worker(tmp_path):
    settings = CsbotSettings.from_env(tmp_path, env={"CSBOT_MAX_MESSAGE_CHARS": "500", "CSBOT_WORKERS": "2"})
    worker = settings.for_inference_worker()
    assert worker.workspace == tmp_path
    assert worker.embedder.torch_threads == ServerConfig(workers=2).threads_per_worker()
    assert worker.generator.torch_threads == worker.embedder.torch_threads
    assert worker.dialogue.max_message_chars == 500
