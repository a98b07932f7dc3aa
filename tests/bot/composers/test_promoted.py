"""The assistant's composer follows the registry's promoted model without a restart, and a
broken promotion makes it answer with the retrieval composer instead of failing the turn."""

import json
import logging

import pytest

from bot.composers.promoted import PromotedModelComposer
from finetune.registry import ModelRegistry
from tests.bot.composers.test_generative import composer, fallback, make_tiny_model, request

pytestmark = pytest.mark.slow


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(tmp_path / "models")


def errors(caplog):
    return [r for r in caplog.records if r.name == "bot.composers.promoted" and r.levelno == logging.ERROR]


def test_without_a_promoted_model_the_retrieval_composer_answers(registry):
    chosen = PromotedModelComposer(registry, composer, fallback())
    assert chosen.name == "retrieval" and chosen.model_id is None
    assert chosen.compose(request(slots={"order_id": "#40318275"})).composer == "retrieval"


def test_promote_and_rollback_take_effect_on_the_next_turn(registry, tmp_path):
    first = registry.register(make_tiny_model(tmp_path / "a"))
    chosen = PromotedModelComposer(registry, composer, fallback())
    assert chosen.model_id is None

    registry.promote(first.id)
    reply = chosen.compose(request(slots={"order_id": "#40318275"}))
    assert chosen.model_id == first.id and chosen.name == "gpt2"
    assert reply.composer.startswith(("gpt2", "retrieval (gpt2"))

    second_dir = make_tiny_model(tmp_path / "b")
    (second_dir / "csbot_model.json").write_text(json.dumps({"base": "scratch", "run": 2}))
    second = registry.register(second_dir)
    registry.promote(second.id)
    chosen.compose(request())
    assert chosen.model_id == second.id

    registry.rollback()
    chosen.compose(request())
    assert chosen.model_id == first.id


def test_a_broken_pointer_answers_with_retrieval_and_is_logged_once_per_change(registry, tmp_path, caplog):
    entry = registry.register(make_tiny_model(tmp_path / "a"))
    registry.promote(entry.id)
    chosen = PromotedModelComposer(registry, composer, fallback())
    assert chosen.model_id == entry.id
    caplog.set_level(logging.ERROR, logger="bot.composers.promoted")

    registry.pointer_path.write_text("{not json")  # a hand edit gone wrong
    for _ in range(3):
        reply = chosen.compose(request(slots={"order_id": "#40318275"}))
        assert reply.composer == "retrieval" and chosen.model_id is None
    assert len(errors(caplog)) == 1
    assert "csbot models promote ID" in errors(caplog)[0].getMessage() and "not valid JSON" in chosen.error

    registry.pointer_path.write_text(json.dumps({"id": "gen-20000101-000000-abcdef"}))  # a model not there
    for _ in range(2):
        assert chosen.compose(request()).composer == "retrieval"
    assert len(errors(caplog)) == 2 and "not in" in errors(caplog)[1].getMessage()

    registry.promote(entry.id)  # the fix
    chosen.compose(request())
    assert chosen.model_id == entry.id and chosen.name == "gpt2" and chosen.error is None


def test_a_promoted_model_that_fails_to_load_answers_with_retrieval_not_the_model_before(registry, tmp_path, caplog):
    good = registry.register(make_tiny_model(tmp_path / "a"))
    bad_dir = make_tiny_model(tmp_path / "b")
    (bad_dir / "csbot_model.json").write_text(json.dumps({"base": "scratch", "run": 2}))
    bad = registry.register(bad_dir)
    (bad.path / "model.safetensors").write_bytes(b"not weights at all")  # corrupt on disk
    registry.promote(good.id)
    chosen = PromotedModelComposer(registry, composer, fallback())
    assert chosen.model_id == good.id
    caplog.set_level(logging.ERROR, logger="bot.composers.promoted")

    registry.promote(bad.id)
    for _ in range(3):
        assert chosen.compose(request(slots={"order_id": "#40318275"})).composer == "retrieval"
    assert chosen.model_id is None and chosen.name == "retrieval"
    assert len(errors(caplog)) == 1 and "weights" in chosen.error

    # an assistant that starts with that promotion answers too
    fresh = PromotedModelComposer(registry, composer, fallback())
    assert fresh.compose(request()).composer == "retrieval" and fresh.model_id is None

    # a model whose files are removed after its promotion
    registry.promote(good.id)
    (good.path / "model.safetensors").unlink()
    late = PromotedModelComposer(registry, composer, fallback())
    assert late.compose(request()).composer == "retrieval" and "model.safetensors" in late.error
