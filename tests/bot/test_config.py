"""Configuration: one object, from defaults, environment and flags."""

from pathlib import Path

import pytest

from bot.config import CsbotConfig


def test_defaults_need_no_environment():
    config = CsbotConfig.from_env(env={})
    assert config.workspace == Path(".csbot")
    assert config.dialogue.max_message_chars == 4000
    assert config.index.faiss_threads == 1


def test_environment_overrides_defaults_and_flags_override_environment():
    env = {"CSBOT_WORKSPACE": "/tmp/ws-env", "CSBOT_MAX_MESSAGE_CHARS": "500", "CSBOT_INDEX_KIND": "hnsw"}
    assert CsbotConfig.from_env(env=env).workspace == Path("/tmp/ws-env")
    config = CsbotConfig.from_env("/tmp/ws-flag", env=env)
    assert config.workspace == Path("/tmp/ws-flag")
    assert config.dialogue.max_message_chars == 500
    assert config.index.kind == "hnsw"


def test_import_limits_come_from_the_environment():
    config = CsbotConfig.from_env(env={"CSBOT_IMPORT_MAX_BYTES": "200000000", "CSBOT_IMPORT_MAX_JSON_DEPTH": "12"})
    assert (config.imports.max_file_bytes, config.imports.max_json_depth) == (200_000_000, 12)


@pytest.mark.parametrize(
    "name,value",
    [
        ("CSBOT_MAX_MESSAGE_CHARS", "lots"),
        ("CSBOT_TORCH_THREADS", "0"),
        ("CSBOT_INDEX_KIND", "annoy"),
        ("CSBOT_IMPORT_MAX_BYTES", "50MB"),
    ],
)
def test_bad_environment_values_are_named(name, value):
    with pytest.raises(ValueError, match=name):
        CsbotConfig.from_env(env={name: value})


def test_config_round_trips_through_json(tmp_path):
    config = CsbotConfig.from_env(tmp_path, env={"CSBOT_FAISS_THREADS": "2", "CSBOT_IMPORT_MAX_JSON_DEPTH": "9"})
    again = CsbotConfig.from_json(config.to_json(), tmp_path)
    assert again == config
