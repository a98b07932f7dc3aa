"""Server settings: CSBOT_* environment variables, explicit values first, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.server.settings import ServerSettings


@pytest.fixture
def env(monkeypatch):
    for name in (
        "CSBOT_WORKSPACE",
        "CSBOT_HOST",
        "CSBOT_PORT",
        "CSBOT_WORKERS",
        "CSBOT_CORS_ORIGINS",
        "CSBOT_TORCH_THREADS",
        "CSBOT_RATE_LIMIT_PER_IP",
        "CSBOT_RATE_LIMIT_PER_SESSION",
        "CSBOT_MAX_BODY_BYTES",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_are_local_and_closed(env):
    s = ServerSettings()
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 8000, 1)
    assert s.workspace == Path(".csbot")
    assert s.cors_origins == []  # same origin only
    assert (s.rate_limit_per_ip, s.rate_limit_per_session, s.max_body_bytes) == (60, 20, 16384)
    assert s.stream_piece_delay_ms == 0


def test_environment_variables_set_it_and_explicit_values_win(env):
    env.setenv("CSBOT_PORT", "9000")
    env.setenv("CSBOT_WORKERS", "2")
    env.setenv("CSBOT_WORKSPACE", "/srv/ws")
    env.setenv("CSBOT_RATE_LIMIT_PER_IP", "0")
    s = ServerSettings()
    assert (s.port, s.workers, s.workspace, s.rate_limit_per_ip) == (9000, 2, Path("/srv/ws"), 0)
    assert ServerSettings(port=9001).port == 9001


@pytest.mark.parametrize(
    "raw", ["https://shop.example.com, http://localhost:3000/", '["https://shop.example.com", "http://localhost:3000"]']
)
def test_cors_origins_are_a_comma_list_or_json(env, raw):
    env.setenv("CSBOT_CORS_ORIGINS", raw)
    assert ServerSettings().cors_origins == ["https://shop.example.com", "http://localhost:3000"]


@pytest.mark.parametrize("origin", ["shop.example.com", "https://shop.example.com/widget", "ftp://x.example"])
def test_a_cors_entry_that_is_not_an_origin_is_refused_with_the_fix(env, origin):
    env.setenv("CSBOT_CORS_ORIGINS", origin)
    with pytest.raises(ValidationError, match="scheme://host"):
        ServerSettings()


@pytest.mark.parametrize(
    ("name", "value"),
    [("CSBOT_PORT", "70000"), ("CSBOT_WORKERS", "0"), ("CSBOT_MAX_BODY_BYTES", "10"), ("CSBOT_PORT", "eighty")],
)
def test_out_of_range_values_are_refused(env, name, value):
    env.setenv(name, value)
    with pytest.raises(ValidationError):
        ServerSettings()


def test_workers_share_the_cores_for_torch_unless_told(env):
    assert ServerSettings(workers=1).threads_per_worker(cores=2) == 2
    assert ServerSettings(workers=2).threads_per_worker(cores=2) == 1
    assert ServerSettings(workers=4).threads_per_worker(cores=2) == 1
    assert ServerSettings(workers=2, torch_threads=3).threads_per_worker(cores=2) == 3


def test_the_assistant_config_takes_the_workspace_and_the_threads_per_worker(env, tmp_path):
    config = ServerSettings(workspace=tmp_path, workers=2).csbot_config(env={"CSBOT_MAX_MESSAGE_CHARS": "500"})
    assert config.workspace == tmp_path
    assert config.embedder.torch_threads == ServerSettings(workers=2).threads_per_worker()
    assert config.dialogue.max_message_chars == 500
