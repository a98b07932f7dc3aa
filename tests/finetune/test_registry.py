"""finetune.registry: register, list, promote, roll back trained models (a real tiny model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.errors import CsbotError
from finetune.registry import (
    BrokenModelError,
    BrokenPromotionError,
    CorruptPointerError,
    DuplicateModelError,
    InvalidModelDirError,
    ModelRegistry,
    NotAwaitingApprovalError,
    NothingToRollBackError,
    UnknownModelError,
)
from tests.helpers import last_json, run_csbot

SENTENCES = [
    "Where is my order? It should have arrived by now.",
    "Your order {{Order Number}} ships tomorrow with our carrier.",
    "Can I pay with PayPal or a credit card?",
    "We accept cards, PayPal and bank transfers.",
    "I want to return the shoes I bought last week.",
    "You can return any item within 30 days for a full refund.",
] * 4


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A real saved model: tiny GPT-2 + our tokenizer (save_pretrained) + csbot_model.json."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from finetune.tokenizer import train_tokenizer

    d = tmp_path_factory.mktemp("model") / "final"
    tok = train_tokenizer(SENTENCES, 400, d)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=64, vocab_size=len(tok))).save_pretrained(d)
    tok.save_pretrained(d)
    write_meta(d, valid_loss=2.5)
    return d


def write_meta(d: Path, valid_loss: float, data: str = "a" * 64) -> None:
    (d / "csbot_model.json").write_text(
        json.dumps(
            {
                "base": "scratch",
                "data_sha256": data,
                "train_config": {"epochs": 2},
                "model_config": {"n_layer": 1, "n_embd": 16},
                "metrics": {"valid_loss": valid_loss},
                "created_at": "2025-01-01T00:00:00+00:00",
            }
        )
    )


def model_copy(template: Path, tmp_path: Path, name: str, valid_loss: float) -> Path:
    """A distinct model (its metadata differs, so its content hash does)."""
    d = tmp_path / name
    shutil.copytree(template, d)
    write_meta(d, valid_loss=valid_loss, data=name * 8)
    return d


@pytest.fixture
def models(template, tmp_path) -> list[Path]:
    return [model_copy(template, tmp_path, f"m{i}", 3.0 - i * 0.5) for i in range(3)]


@pytest.fixture
def reg(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "ws" / "models")


def test_register_copies_the_model_with_its_metadata_and_does_not_promote(reg, template) -> None:
    from transformers import AutoTokenizer, GPT2LMHeadModel

    entry = reg.register(template, name="first")
    assert entry.id.startswith("gen-") and len(entry.id.split("-")[-1]) == 6
    assert entry.path == reg.root / entry.id and not entry.promoted
    for f in ("config.json", "model.safetensors", "tokenizer.json", "csbot_model.json", "registry.json"):
        assert (entry.path / f).is_file(), f
    meta = json.loads((entry.path / "registry.json").read_text())
    assert meta["base"] == "scratch" and meta["data_sha256"] == "a" * 64
    assert meta["metrics"]["valid_loss"] == 2.5 and meta["train_config"] == {"epochs": 2}
    assert meta["created_at"] == "2025-01-01T00:00:00+00:00" and meta["registered_at"]
    assert meta["source"] == str(template.resolve()) and meta["name"] == "first"
    import hashlib

    assert meta["weights_sha256"] == hashlib.sha256((template / "model.safetensors").read_bytes()).hexdigest()
    assert entry.id.endswith(meta["content_sha256"][:6])
    assert reg.promoted() is None and reg.promotion_token() is None
    # what is stored loads
    GPT2LMHeadModel.from_pretrained(entry.path, local_files_only=True)
    AutoTokenizer.from_pretrained(entry.path, local_files_only=True)
    assert not [p for p in reg.root.iterdir() if p.name.startswith(".tmp")]


def test_list_get_and_duplicates(reg, models) -> None:
    ids = [reg.register(m).id for m in models]
    listed = reg.list()
    assert [e.id for e in listed] == ids  # registration order
    assert [e.valid_loss for e in listed] == [3.0, 2.5, 2.0]
    assert not any(e.promoted for e in listed)
    assert reg.get(ids[1]).data_sha256 == "m1" * 8
    with pytest.raises(DuplicateModelError, match=ids[0]):
        reg.register(models[0])
    assert len(reg.list()) == 3


def test_promote_and_rollback_step_back_through_history(reg, models) -> None:
    a, b, c = (reg.register(m).id for m in models)
    assert reg.promote(a).promoted
    assert reg.promoted().id == a
    reg.promote(b)
    reg.promote(c)
    assert [e.id for e in reg.list() if e.promoted] == [c]
    assert reg.pointer()["previous"] == b
    assert reg.rollback().id == b and reg.promoted().id == b
    assert reg.pointer()["previous"] == a
    assert reg.rollback().id == a
    with pytest.raises(NothingToRollBackError, match="no earlier promoted model"):
        reg.rollback()
    assert reg.promoted().id == a
    reg.promote(c)  # a new branch: rollback returns to a, not to b
    assert reg.rollback().id == a
    actions = [(h["action"], h["id"]) for h in reg.history()]
    assert actions == [
        ("promote", a),
        ("promote", b),
        ("promote", c),
        ("rollback", b),
        ("rollback", a),
        ("promote", c),
        ("rollback", a),
    ]


def test_retire_switches_the_generator_off_until_a_model_is_promoted_again(reg, models) -> None:
    a, b = reg.register(models[0]).id, reg.register(models[1]).id
    assert reg.retire() is None and reg.pointer() is None  # nothing promoted: nothing written
    reg.promote(a)
    reg.promote(b)
    before = reg.promotion_token()
    assert reg.retire() == b
    assert reg.promoted() is None and not any(e.promoted for e in reg.list())
    assert reg.promotion_token() != before  # a running assistant notices and uses retrieval
    assert reg.retire() is None  # retiring twice changes nothing
    # the retirement ends the history a rollback walks
    with pytest.raises(NothingToRollBackError, match="no model is promoted"):
        reg.rollback()
    reg.promote(a)
    with pytest.raises(NothingToRollBackError, match="first promoted model"):
        reg.rollback()
    assert [(h["action"], h["id"]) for h in reg.history()] == [
        ("promote", a),
        ("promote", b),
        ("retire", b),
        ("promote", a),
    ]


def test_rollback_with_nothing_promoted_is_refused(reg, models) -> None:
    reg.register(models[0])
    with pytest.raises(NothingToRollBackError, match="no model is promoted"):
        reg.rollback()


def test_unknown_id_lists_the_known_ones(reg, models) -> None:
    with pytest.raises(UnknownModelError, match="no model is registered yet"):
        reg.promote("gen-nope")
    a, b = reg.register(models[0]).id, reg.register(models[1]).id
    with pytest.raises(UnknownModelError) as e:
        reg.promote("gen-nope")
    assert a in str(e.value) and b in str(e.value)
    for bad in ("../ws", "", ".lock", "PROMOTED"):
        with pytest.raises(UnknownModelError):
            reg.get(bad)
    assert isinstance(e.value, CsbotError)


@pytest.mark.parametrize(
    "remove, named",
    [
        ("config.json", "config.json"),
        ("model.safetensors", "weights"),
        ("tokenizer.json", "tokenizer"),
        ("csbot_model.json", "csbot_model.json"),
    ],
)
def test_missing_files_are_named(reg, template, tmp_path, remove, named) -> None:
    d = model_copy(template, tmp_path, "broken", 1.0)
    (d / remove).unlink()
    with pytest.raises(InvalidModelDirError, match=named) as e:
        reg.register(d)
    assert isinstance(e.value, CsbotError)
    assert reg.list() == []
    assert not reg.root.exists()  # a refused model leaves nothing behind, not even the folder


def test_a_run_directory_instead_of_its_final_gets_a_hint(reg, template, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(template, run / "final")
    with pytest.raises(InvalidModelDirError, match=r"did you mean .*final"):
        reg.register(run)


def test_corrupt_pointer_is_named_with_the_fix(reg, models) -> None:
    a, b = reg.register(models[0]).id, reg.register(models[1]).id
    reg.promote(a)
    reg.pointer_path.write_text("{not json")
    with pytest.raises(CorruptPointerError) as e:
        reg.promoted()
    assert str(reg.pointer_path) in str(e.value) and "csbot models promote ID" in str(e.value)
    assert [x.promoted for x in reg.list()] == [False, False]  # listing still works
    with pytest.raises(CorruptPointerError):
        reg.rollback()
    reg.promote(b)  # the fix
    assert reg.promoted().id == b

    reg.pointer_path.write_text(json.dumps({"id": "gen-20000101-000000-abcdef"}))
    with pytest.raises(CorruptPointerError, match="not in"):
        reg.promoted()


def test_a_broken_promotion_says_what_is_broken_and_how_to_fix_it(reg, models) -> None:
    a, b = reg.register(models[0]).id, reg.register(models[1]).id
    assert reg.check_promotion() is None  # nothing promoted is not broken
    reg.promote(a)
    assert reg.check_promotion() is None

    reg.pointer_path.write_text("[1, 2")
    problem = reg.check_promotion()
    assert isinstance(problem, CorruptPointerError) and isinstance(problem, BrokenPromotionError)
    assert "csbot models promote ID" in str(problem) and "csbot models retire" in str(problem)
    assert reg.retire() == "(corrupt pointer)"  # the other fix: the generator off
    assert reg.check_promotion() is None and reg.promoted() is None

    reg.promote(a)
    (reg.root / a / "tokenizer.json").unlink()
    with pytest.raises(BrokenModelError, match=rf"promoted model {a} .* lacks a tokenizer.*csbot models retire"):
        reg.promoted()
    assert isinstance(reg.check_promotion(), BrokenModelError)
    assert [e.id for e in reg.list() if e.promoted] == [a]  # the listing still shows which one it is
    with pytest.raises(BrokenModelError, match="cannot be used"):
        reg.promote(a)  # promoting a model the assistant cannot load is refused

    reg.promote(b)
    weights = reg.root / b / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"corrupt!")  # same files, other bytes
    assert reg.promoted().id == b  # cheap per-turn check: the files are there
    problem = reg.check_promotion()
    assert isinstance(problem, BrokenModelError) and "model.safetensors differs" in str(problem)
    assert reg.check_promotion(verify=False) is None

    reg.pointer_path.unlink()
    reg.pointer_path.mkdir()  # not even a file
    assert reg.promotion_token() is not None  # a running assistant notices, and never crashes on it
    with pytest.raises(CorruptPointerError, match="cannot be read"):
        reg.promoted()


def test_a_candidate_awaiting_approval_is_promoted_only_by_a_person(reg, models) -> None:
    a = reg.register(models[0]).id
    reg.promote(a)
    candidate = reg.register(models[1], name="round-1", awaiting_approval={"round": "round-1", "reason": "better"})
    assert candidate.state == "awaiting approval" and not candidate.promoted
    assert reg.promoted().id == a
    assert [e.to_json()["state"] for e in reg.list()] == ["promoted", "awaiting approval"]
    with pytest.raises(NotAwaitingApprovalError, match="promote it with `csbot models promote"):
        reg.approve(a)

    approved = reg.approve(candidate.id, by="dana")
    assert approved.promoted and reg.promoted().id == candidate.id
    assert approved.approval["status"] == "approved" and approved.approval["approved_by"] == "dana"
    assert approved.approval["round"] == "round-1" and approved.approval["approved_at"]
    assert reg.history()[-1]["action"] == "approve" and reg.pointer()["previous"] == a
    with pytest.raises(NotAwaitingApprovalError, match="it is promoted"):
        reg.approve(candidate.id)
    assert reg.rollback().id == a  # an approval is a promotion like any other
    assert reg.get(candidate.id).state == "registered"

    # promoting a waiting candidate by hand approves it too (a person did it)
    other = reg.register(models[2], awaiting_approval={"round": "round-2"})
    reg.promote(other.id)
    assert reg.get(other.id).approval["status"] == "approved"
    with pytest.raises(UnknownModelError):
        reg.approve("gen-nope")


def test_promotion_token_changes_on_promote_and_rollback_only(reg, models) -> None:
    a, b = reg.register(models[0]).id, reg.register(models[1]).id
    assert reg.promotion_token() is None
    reg.promote(a)
    t1 = reg.promotion_token()
    assert t1 is not None and reg.promotion_token() == t1  # stable while nothing changes
    reg.register(models[2])
    reg.list()
    reg.get(a)
    reg.promoted()
    assert reg.promotion_token() == t1  # registering and reading do not change it
    reg.promote(a)  # already promoted: a no-op
    assert reg.promotion_token() == t1
    reg.promote(b)
    t2 = reg.promotion_token()
    assert t2 != t1
    reg.rollback()
    t3 = reg.promotion_token()
    assert t3 not in (t1, t2)  # back to a, but a new token: a server reloads
    reg.promote(b)
    assert reg.promotion_token() not in (t1, t2, t3)


def test_leftover_temp_dirs_are_ignored(reg, models) -> None:
    a = reg.register(models[0]).id
    # a registration that died half-way: a partial copy (even with registry.json) in a temp dir
    leftover = reg.root / ".tmp-999-deadbeef"
    shutil.copytree(reg.root / a, leftover)
    (leftover / "model.safetensors").unlink()
    assert [e.id for e in reg.list()] == [a]
    with pytest.raises(UnknownModelError):
        reg.promote(leftover.name)
    b = reg.register(models[1]).id
    assert [e.id for e in reg.list()] == [a, b]


def test_a_failed_copy_leaves_nothing_behind(reg, models, monkeypatch) -> None:
    def broken_copy(src, dst, **kw):
        Path(dst).mkdir()
        (Path(dst) / "config.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copytree", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        reg.register(models[0])
    assert reg.list() == []
    assert not [p for p in reg.root.iterdir() if p.is_dir()]


def test_rollback_skips_models_removed_by_hand(reg, models) -> None:
    a, b, c = (reg.register(m).id for m in models)
    for x in (a, b, c):
        reg.promote(x)
    shutil.rmtree(reg.root / b)
    assert reg.rollback().id == a


@pytest.mark.e2e
def test_models_cli_add_list_promote_rollback_retire(template, tmp_path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    m1, m2 = model_copy(template, tmp_path, "c1", 2.0), model_copy(template, tmp_path, "c2", 1.5)
    assert last_json(run_csbot("models", "list", "--json", workspace=ws).stdout) == []
    a = last_json(run_csbot("models", "add", str(m1), workspace=ws).stdout)["id"]
    b = last_json(run_csbot("models", "add", str(m2), workspace=ws).stdout)["id"]
    listed = last_json(run_csbot("models", "list", "--json", workspace=ws).stdout)
    assert [(x["id"], x["promoted"], x["metrics"]["valid_loss"]) for x in listed] == [(a, False, 2.0), (b, False, 1.5)]
    assert last_json(run_csbot("models", "promote", a, workspace=ws).stdout)["promoted"] == a
    assert last_json(run_csbot("models", "promote", b, workspace=ws).stdout) == {"promoted": b, "previous": a}
    table = run_csbot("models", "list", workspace=ws).stdout
    assert a in table and b in table and "*" in table and "1.5000" in table
    back = last_json(run_csbot("models", "rollback", workspace=ws).stdout)
    assert back["promoted"] == a and back["rolled_back_from"] == b
    assert [
        x["id"] for x in last_json(run_csbot("models", "list", "--json", workspace=ws).stdout) if x["promoted"]
    ] == [a]
    # typed errors: one line, exit 1
    proc = run_csbot("models", "rollback", workspace=ws, check=False)
    assert proc.returncode == 1 and "no earlier promoted model" in proc.stderr
    proc = run_csbot("models", "promote", "gen-nope", workspace=ws, check=False)
    assert proc.returncode == 1 and a in proc.stderr and b in proc.stderr
    proc = run_csbot("models", "add", str(tmp_path), workspace=ws, check=False)
    assert proc.returncode == 1 and "config.json" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_csbot("models", "list", workspace=tmp_path / "missing", check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    # retire: the generator off, the retrieval composer answers
    assert last_json(run_csbot("models", "retire", workspace=ws).stdout) == {"promoted": None, "retired": a}
    assert not any(x["promoted"] for x in last_json(run_csbot("models", "list", "--json", workspace=ws).stdout))
    again = run_csbot("models", "retire", workspace=ws)
    assert last_json(again.stdout) == {"promoted": None, "retired": None} and "already" in again.stderr


@pytest.mark.e2e
def test_models_cli_shows_waiting_candidates_approves_them_and_reports_a_broken_pointer(template, tmp_path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    reg = ModelRegistry.for_workspace(ws)
    a = reg.register(model_copy(template, tmp_path, "c1", 2.0)).id
    waiting = reg.register(
        model_copy(template, tmp_path, "c2", 1.5),
        awaiting_approval={"round": "round-x", "reason": "ROUGE-L 0.3 vs 0.2"},
    ).id
    reg.promote(a)
    table = run_csbot("models", "list", workspace=ws).stdout
    assert "awaiting approval" in table and "promoted" in table
    listed = last_json(run_csbot("models", "list", "--json", workspace=ws).stdout)
    assert [(x["id"], x["state"]) for x in listed] == [(a, "promoted"), (waiting, "awaiting approval")]

    proc = run_csbot("models", "approve", a, workspace=ws, check=False)
    assert proc.returncode == 1 and "not awaiting approval" in proc.stderr
    done = last_json(run_csbot("models", "approve", waiting, "--by", "dana", workspace=ws).stdout)
    assert done == {"promoted": waiting, "approved": waiting, "approved_by": "dana", "previous": a}
    assert reg.promoted().id == waiting

    # a broken pointer: listed with what is wrong and the two fixes, not a crash
    reg.pointer_path.write_text(json.dumps({"id": "gen-20000101-000000-abcdef"}))
    proc = run_csbot("models", "list", workspace=ws)
    said = " ".join(proc.stderr.split())
    assert "gen-20000101-000000-abcdef" in said and "is broken" in said
    assert "csbot models promote ID" in said and "csbot models retire" in said
    (reg.root / a / "model.safetensors").write_bytes(b"junk")
    reg.promote(a)
    listed = last_json(run_csbot("models", "list", "--json", workspace=ws).stdout)
    assert [x["state"] for x in listed if x["id"] == a] == ["promoted, broken"]


@pytest.mark.e2e
@pytest.mark.slow
def test_finetune_train_registers_its_result_without_promoting(tmp_path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from finetune.tokenizer import train_tokenizer
    from tests.finetune.test_train import write_pairs

    write_pairs(tmp_path / "pairs")
    ck = tmp_path / "ck"
    tok = train_tokenizer(SENTENCES, 400, ck)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=192, vocab_size=len(tok))).save_pretrained(
        ck
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    args = ("finetune", "train", "--pairs", str(tmp_path / "pairs"), "--base", str(ck), "--epochs", "1")
    result = last_json(run_csbot(*args, "--out", str(tmp_path / "run"), workspace=ws).stdout)
    reg = ModelRegistry.for_workspace(ws)
    assert [e.id for e in reg.list()] == [result["registered"]]
    entry = reg.get(result["registered"])
    assert entry.base == str(ck) and entry.valid_loss == result["valid_loss"]
    assert entry.metadata["source"] == str((tmp_path / "run" / "final").resolve())
    assert reg.promoted() is None
    off = last_json(run_csbot(*args, "--out", str(tmp_path / "run2"), "--no-register", workspace=ws).stdout)
    assert off["registered"] is None and len(reg.list()) == 1
