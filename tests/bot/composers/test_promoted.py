"""The assistant's composer follows the registry's promoted model without a restart, and a
broken promotion makes it answer with the retrieval composer instead of failing the turn.

The fast tests use a real registry holding stand-in model folders and a fake generator (no
GPT-2 loads); the slow ones load a real tiny GPT-2."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.composers.promoted import PromotedModelComposer
from bot.contracts import ComposeRequest, Slots
from finetune.registry import ModelRegistry
from tests.bot.composers.test_generative import composer, fallback, make_tiny_model, request
from tests.fakes import FakeComposer, hit


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(tmp_path / "models")


def errors(caplog):
    return [r for r in caplog.records if r.name == "bot.composers.promoted" and r.levelno == logging.ERROR]


# -- fast: stand-in models, a fake generator ---------------------------------------------------------


@dataclass
class FakeGenerator(FakeComposer):
    """A generator for one model folder: its load reads the weights file and fails, as a real
    load does, when the file is not weights. `loads` is shared by every generator made."""

    model_dir: Path = Path()
    loads: list[str] = field(default_factory=list)

    def load(self) -> FakeGenerator:
        if not (self.model_dir / "model.safetensors").read_bytes().startswith(b"weights"):
            raise ValueError("model.safetensors holds no weights")
        self.loads.append(self.model_dir.name)
        return self


@dataclass
class FakeGenerators:
    """`make_generator` for the promoted composer: a `FakeGenerator` named after the model."""

    loads: list[str] = field(default_factory=list)

    def __call__(self, model_dir: Path) -> FakeGenerator:
        return FakeGenerator(name=f"gpt2 {model_dir.name}", model_dir=model_dir, loads=self.loads)


def stand_in_model(path: Path, run: int) -> Path:
    """A folder the registry accepts as a model (its files are placeholders, told apart by `run`)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "gpt2", "run": run}))
    (path / "model.safetensors").write_bytes(f"weights of run {run}".encode())
    (path / "tokenizer.json").write_text("{}")
    (path / "csbot_model.json").write_text(json.dumps({"base": "scratch", "run": run}))
    return path


TURN = ComposeRequest(
    text="where is my order?",
    intent="order_status",
    history=(),
    hits=(hit("conv-1#t0", 0.9, intent="order_status", reply="It is on its way."),),
    slots=Slots({}),
)


def promoted(registry: ModelRegistry, generators: FakeGenerators) -> PromotedModelComposer:
    return PromotedModelComposer(registry, generators, FakeComposer(name="retrieval"))


def answered_by(chosen: PromotedModelComposer) -> str:
    """Who wrote the reply to one more turn (every turn gets a reply)."""
    reply = chosen.compose(TURN)
    assert reply.action == "answer" and reply.text.endswith("It is on its way.")
    return reply.composer


def test_without_a_promotion_the_fallback_answers_and_nothing_loads(registry):
    generators = FakeGenerators()
    chosen = promoted(registry, generators)
    assert [answered_by(chosen) for _ in range(2)] == ["retrieval", "retrieval"]
    assert (chosen.name, chosen.model_id, chosen.error, generators.loads) == ("retrieval", None, None, [])


def test_a_model_promoted_while_running_answers_from_the_next_turn_and_loads_once(registry, tmp_path):
    first = registry.register(stand_in_model(tmp_path / "a", 1))
    generators = FakeGenerators()
    chosen = promoted(registry, generators)
    assert answered_by(chosen) == "retrieval"

    registry.promote(first.id)
    assert [answered_by(chosen) for _ in range(3)] == [f"gpt2 {first.id}"] * 3
    assert (chosen.name, chosen.model_id, generators.loads) == (f"gpt2 {first.id}", first.id, [first.id])

    second = registry.register(stand_in_model(tmp_path / "b", 2))
    assert answered_by(chosen) == f"gpt2 {first.id}"  # registering is not promoting
    registry.promote(second.id)
    assert answered_by(chosen) == f"gpt2 {second.id}"
    registry.rollback()
    assert answered_by(chosen) == f"gpt2 {first.id}" and chosen.model_id == first.id
    assert generators.loads == [first.id, second.id, first.id]


def test_a_promoted_model_that_fails_to_load_falls_back_logs_once_and_recovers(registry, tmp_path, caplog):
    good = registry.register(stand_in_model(tmp_path / "a", 1))
    bad = registry.register(stand_in_model(tmp_path / "b", 2))
    (bad.path / "model.safetensors").write_bytes(b"not weights at all")  # corrupt on disk
    registry.promote(good.id)
    generators = FakeGenerators()
    chosen = promoted(registry, generators)
    caplog.set_level(logging.ERROR, logger="bot.composers.promoted")

    registry.promote(bad.id)
    # the retrieval composer, not the model promoted before: the operator moved away from it
    assert [answered_by(chosen) for _ in range(3)] == ["retrieval"] * 3
    assert (chosen.model_id, chosen.error) == (None, "ValueError: model.safetensors holds no weights")
    assert len(errors(caplog)) == 1 and "csbot models promote ID" in errors(caplog)[0].getMessage()

    registry.promote(good.id)  # the fix
    assert answered_by(chosen) == f"gpt2 {good.id}"
    assert (chosen.model_id, chosen.error, generators.loads) == (good.id, None, [good.id, good.id])


def test_a_broken_pointer_falls_back_and_is_logged_once_per_change(registry, tmp_path, caplog):
    entry = registry.register(stand_in_model(tmp_path / "a", 1))
    registry.promote(entry.id)
    chosen = promoted(registry, FakeGenerators())
    caplog.set_level(logging.ERROR, logger="bot.composers.promoted")

    registry.pointer_path.write_text("{not json")  # a hand edit gone wrong
    assert [answered_by(chosen) for _ in range(3)] == ["retrieval"] * 3
    assert len(errors(caplog)) == 1 and "not valid JSON" in chosen.error

    registry.pointer_path.write_text(json.dumps({"id": "gen-20000101-000000-abcdef"}))  # a model not there
    assert [answered_by(chosen) for _ in range(2)] == ["retrieval"] * 2
    assert len(errors(caplog)) == 2 and "not in" in chosen.error

    registry.promote(entry.id)
    assert answered_by(chosen) == f"gpt2 {entry.id}" and chosen.error is None


def test_a_promoted_model_whose_files_were_removed_falls_back(registry, tmp_path):
    entry = registry.register(stand_in_model(tmp_path / "a", 1))
    registry.promote(entry.id)
    (entry.path / "model.safetensors").unlink()
    chosen = promoted(registry, FakeGenerators())
    assert answered_by(chosen) == "retrieval" and "model.safetensors" in chosen.error


def test_a_registry_that_cannot_be_read_still_gets_answers(registry):
    registry.pointer_path.mkdir(parents=True)  # a directory where the pointer file belongs
    chosen = promoted(registry, FakeGenerators())
    assert [answered_by(chosen) for _ in range(2)] == ["retrieval"] * 2
    assert chosen.model_id is None and "cannot be read" in chosen.error


# -- slow: the real tiny GPT-2 -------------------------------------------------------------------


@pytest.mark.slow
def test_without_a_promoted_model_the_retrieval_composer_answers(registry):
    chosen = PromotedModelComposer(registry, composer, fallback())
    assert chosen.name == "retrieval" and chosen.model_id is None
    assert chosen.compose(request(slots={"order_id": "#40318275"})).composer == "retrieval"


@pytest.mark.slow
def test_promote_and_rollback_take_effect_on_the_next_turn(registry, tmp_path):
    first = registry.register(make_tiny_model(tmp_path / "a"))
    chosen = PromotedModelComposer(registry, composer, fallback())
    assert chosen.model_id is None

    registry.promote(first.id)
    reply = chosen.compose(request(slots={"order_id": "#40318275"}))
    assert chosen.model_id == first.id and chosen.name == "gpt2"
    # the tiny model is seeded and decodes greedily: its reply passes the guard, every run
    assert (reply.composer, reply.note) == ("gpt2", None)

    second_dir = make_tiny_model(tmp_path / "b")
    (second_dir / "csbot_model.json").write_text(json.dumps({"base": "scratch", "run": 2}))
    second = registry.register(second_dir)
    registry.promote(second.id)
    chosen.compose(request())
    assert chosen.model_id == second.id

    registry.rollback()
    chosen.compose(request())
    assert chosen.model_id == first.id


@pytest.mark.slow
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


@pytest.mark.slow
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
