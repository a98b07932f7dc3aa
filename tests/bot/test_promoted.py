"""The assistant's composer follows the registry's promoted model without a restart."""

import json

import pytest

from bot.promoted import PromotedModelComposer
from finetune.registry import ModelRegistry
from tests.bot.test_generator import composer, fallback, make_tiny_model, request

pytestmark = pytest.mark.slow


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(tmp_path / "models")


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


def test_a_promoted_model_that_fails_to_load_keeps_the_current_composer(registry, tmp_path):
    entry = registry.register(make_tiny_model(tmp_path / "a"))
    chosen = PromotedModelComposer(registry, composer, fallback())
    (entry.path / "model.safetensors").unlink()
    registry.promote(entry.id)
    chosen.compose(request())
    assert chosen.model_id is None and chosen.name == "retrieval"
