"""Settings: one nested object, from defaults, environment and flags."""

import re
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.settings import CsbotSettings, InvalidSettingsError
from finetune.decoder import GeneratorConfig
from retrieval.config import EmbedderConfig


def test_defaults_need_no_environment():
    settings = CsbotSettings.from_env(env={})
    assert settings.workspace == Path(".csbot")
    assert settings.dialogue.max_message_chars == 4000
    assert settings.index.faiss_threads == 1
    assert settings.generator == GeneratorConfig()
    assert (settings.server.host, settings.server.port, settings.server.workers) == ("127.0.0.1", 8000, 1)


def test_environment_overrides_defaults_and_flags_override_environment():
    env = {"CSBOT_WORKSPACE": "/tmp/ws-env", "CSBOT_MAX_MESSAGE_CHARS": "500", "CSBOT_INDEX_KIND": "hnsw"}
    assert CsbotSettings.from_env(env=env).workspace == Path("/tmp/ws-env")
    settings = CsbotSettings.from_env("/tmp/ws-flag", env=env)
    assert settings.workspace == Path("/tmp/ws-flag")
    assert settings.dialogue.max_message_chars == 500
    assert settings.index.kind == "hnsw"


def test_explicit_section_values_are_merged_over_the_environment():
    env = {"CSBOT_PORT": "9000", "CSBOT_WORKERS": "2", "CSBOT_GENERATOR__CANDIDATES": "1"}
    settings = CsbotSettings.from_env(env=env, server={"port": 9001})
    assert (settings.server.port, settings.server.workers) == (9001, 2)  # the flag wins, the rest stays
    assert settings.generator.candidates == 1
    whole = CsbotSettings.from_env(env=env, generator=GeneratorConfig(candidates=5))
    assert whole.generator == GeneratorConfig(candidates=5)  # an object replaces its section


def test_the_flat_variables_keep_working():
    env = {
        "CSBOT_EMBEDDER_PATH": "/models/minilm",
        "CSBOT_TORCH_THREADS": "3",
        "CSBOT_FAISS_THREADS": "2",
        "CSBOT_IMPORT_MAX_BYTES": "200000000",
        "CSBOT_IMPORT_MAX_JSON_DEPTH": "12",
        "CSBOT_PORT": "9000",
        "CSBOT_CORS_ORIGINS": "https://shop.example.com",
        "CSBOT_TRUSTED_PROXIES": "10.0.0.0/8",
        "CSBOT_SECRET_KEY": "k" * 32,
        "CSBOT_RETENTION_DAYS": "30",
    }
    settings = CsbotSettings.from_env(env=env)
    assert settings.embedder == EmbedderConfig(model_path="/models/minilm", torch_threads=3)
    # one torch pool per process: the generator and each server worker get the same threads
    assert settings.generator.torch_threads == settings.server.torch_threads == 3
    assert settings.index.faiss_threads == 2
    assert (settings.imports.max_file_bytes, settings.imports.max_json_depth) == (200_000_000, 12)
    server = settings.server
    assert (server.port, server.cors_origins, server.trusted_proxies) == (
        9000,
        ["https://shop.example.com"],
        ["10.0.0.0/8"],
    )
    assert server.secret_key == SecretStr("k" * 32) and server.retention_days == 30


def test_nested_variables_reach_every_section_and_beat_the_flat_names():
    env = {
        "CSBOT_GENERATOR__CANDIDATES": "1",
        "CSBOT_GENERATOR__DECODING": "top_p",
        "CSBOT_GENERATOR__INT8": "false",
        "CSBOT_GENERATOR__MAX_NEW_TOKENS": "40",
        "CSBOT_DIALOGUE__CLARIFY_BELOW": "0.3",
        "CSBOT_CLASSIFIER__OVERRIDES": '{"seed": 7}',
        "CSBOT_SERVER__PORT": "9002",
        "CSBOT_PORT": "9000",
        "CSBOT_TORCH_THREADS": "3",
        "CSBOT_EMBEDDER__TORCH_THREADS": "1",
    }
    settings = CsbotSettings.from_env(env=env)
    generator = settings.generator
    assert (generator.candidates, generator.decoding, generator.int8, generator.max_new_tokens) == (
        1,
        "top_p",
        False,
        40,
    )
    assert settings.dialogue.clarify_below == 0.3
    assert settings.classifier.overrides == {"seed": 7}
    assert settings.server.port == 9002
    assert settings.embedder.torch_threads == 1 and settings.generator.torch_threads == 3


def test_empty_variables_are_unset():
    settings = CsbotSettings.from_env(env={"CSBOT_WORKSPACE": "", "CSBOT_EMBEDDER_PATH": "", "CSBOT_PORT": ""})
    assert (settings.workspace, settings.embedder.model_path, settings.server.port) == (Path(".csbot"), None, 8000)


def test_the_process_environment_is_read_when_no_mapping_is_given(monkeypatch):
    monkeypatch.setenv("CSBOT_SERVER__WORKERS", "3")
    monkeypatch.setenv("CSBOT_MAX_MESSAGE_CHARS", "700")
    settings = CsbotSettings()
    assert (settings.server.workers, settings.dialogue.max_message_chars) == (3, 700)
    assert CsbotSettings.from_env(env={}).server.workers == 1  # a given mapping is all there is


@pytest.mark.parametrize(
    "name,value",
    [
        ("CSBOT_MAX_MESSAGE_CHARS", "lots"),
        ("CSBOT_TORCH_THREADS", "0"),
        ("CSBOT_EMBEDDER__TORCH_THREADS", "0"),
        ("CSBOT_INDEX_KIND", "annoy"),
        ("CSBOT_IMPORT_MAX_BYTES", "50MB"),
        ("CSBOT_IMPORT_MAX_BYTES", "0"),
        ("CSBOT_PORT", "70000"),
        ("CSBOT_GENERATOR__DECODING", "sample"),
        ("CSBOT_GENERATOR__EVIDENCE_ORDER", "newest"),
    ],
)
def test_bad_environment_values_are_named(name, value):
    with pytest.raises(InvalidSettingsError, match=name):
        CsbotSettings.from_env(env={name: value})


def test_a_check_across_a_section_names_the_field_and_the_section_variables():
    with pytest.raises(InvalidSettingsError, match=r"candidates must be at least 1.*CSBOT_GENERATOR__<FIELD>"):
        CsbotSettings.from_env(env={"CSBOT_GENERATOR__CANDIDATES": "0"})
    with pytest.raises(InvalidSettingsError, match=r"copy_bias must be between 0 and 20.*got -1\.0"):
        CsbotSettings.from_env(env={"CSBOT_GENERATOR__COPY_BIAS": "-1"})
    with pytest.raises(InvalidSettingsError, match=r"copy_span must be between 2 and 32.*got 40"):
        CsbotSettings.from_env(env={"CSBOT_GENERATOR__COPY_SPAN": "40"})
    copying = {"CSBOT_GENERATOR__COPY_SPAN": "6", "CSBOT_GENERATOR__COPY_TO_END": "true"}
    generator = CsbotSettings.from_env(env=copying).generator
    assert (generator.copy_span, generator.copy_to_end, generator.copy_from_start) == (6, True, False)


def test_a_bad_value_error_is_a_csbot_error_and_a_value_error():
    with pytest.raises(ValueError, match="CSBOT_PORT") as caught:
        CsbotSettings.from_env(env={}, server={"port": -1})
    assert isinstance(caught.value, InvalidSettingsError)


def test_a_bad_secret_is_refused_without_echoing_it():
    with pytest.raises(InvalidSettingsError, match="CSBOT_SECRET_KEY") as caught:
        CsbotSettings.from_env(env={"CSBOT_SECRET_KEY": "too-short-secret"})
    assert "too-short-secret" not in str(caught.value)


def test_a_section_given_whole_must_be_json():
    with pytest.raises(InvalidSettingsError, match="classifier"):
        CsbotSettings.from_env(env={"CSBOT_CLASSIFIER": "not json"})


def test_an_inference_worker_gets_its_share_of_the_cores_for_torch():
    settings = CsbotSettings.from_env(env={"CSBOT_WORKERS": "2", "CSBOT_SERVER__TORCH_THREADS": "3"})
    worker = settings.for_inference_worker()
    assert worker.embedder.torch_threads == worker.generator.torch_threads == 3
    assert worker.server == settings.server and worker.dialogue == settings.dialogue


def test_settings_round_trip_through_json_with_the_generator_options(tmp_path):
    env = {
        "CSBOT_FAISS_THREADS": "2",
        "CSBOT_IMPORT_MAX_JSON_DEPTH": "9",
        "CSBOT_GENERATOR__CANDIDATES": "1",
        "CSBOT_GENERATOR__INT8": "false",
        "CSBOT_CLASSIFIER__OVERRIDES": '{"seed": 7}',
        "CSBOT_CORS_ORIGINS": "https://shop.example.com",
    }
    settings = CsbotSettings.from_env(tmp_path, env=env)
    saved = settings.to_json()
    assert saved["generator"]["candidates"] == 1 and saved["generator"]["int8"] is False
    assert CsbotSettings.from_json(saved, tmp_path) == settings


def test_the_saved_copy_leaves_the_server_secret_out(tmp_path):
    settings = CsbotSettings.from_env(tmp_path, env={"CSBOT_SECRET_KEY": "s" * 40})
    saved = settings.to_json()
    assert "secret_key" not in saved["server"] and "s" * 40 not in str(saved)
    assert CsbotSettings.from_json(saved, tmp_path) == settings.model_copy(
        update={"server": settings.server.model_copy(update={"secret_key": None})}
    )


def test_an_older_saved_copy_takes_defaults_for_what_it_lacks(tmp_path):
    older = {"workspace": "elsewhere", "embedder": {"torch_threads": 1, "gone": 3}, "index": {}, "dialogue": {}}
    settings = CsbotSettings.from_json(older, tmp_path)
    assert settings.workspace == tmp_path  # where the workspace is now, not where it was built
    assert settings.embedder == replace(EmbedderConfig(), torch_threads=1)
    assert settings.generator == GeneratorConfig()


def test_a_saved_copy_with_a_bad_value_is_refused_naming_the_file(tmp_path):
    with pytest.raises(InvalidSettingsError, match=re.escape("workspace.json")):
        CsbotSettings.from_json({"index": {"kind": "annoy"}}, tmp_path)
