"""`csbot finetune train` through the installed CLI: the checkpoint-by-path route."""

import json

import pytest

from tests.finetune.test_train import write_pairs
from tests.helpers import last_json, run_csbot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_train_from_a_local_checkpoint_writes_a_loadable_model_and_prints_metrics(tiny_checkpoint, tmp_path):
    pairs = tmp_path / "pairs"
    write_pairs(pairs)
    out = tmp_path / "run"
    proc = run_csbot(
        "finetune",
        "train",
        "--pairs",
        str(pairs),
        "--base",
        str(tiny_checkpoint),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--lr",
        "2e-3",
        "--label-smoothing",
        "0.05",
        "--evidence-order",
        "consensus",
        "--consensus-k",
        "5",
    )
    metrics = last_json(proc.stdout)
    assert metrics["valid_loss"] < metrics["valid_loss_start"]
    meta = json.loads((out / "final" / "csbot_model.json").read_text())
    assert meta["base"] == str(tiny_checkpoint)
    assert meta["train_config"]["label_smoothing"] == 0.05  # how it was trained travels with it
    # and how the composer should read it
    assert (meta["generation"]["evidence_order"], meta["generation"]["consensus_k"]) == ("consensus", 5)


def test_a_base_that_is_not_on_disk_says_how_to_provide_it(tmp_path):
    pairs = tmp_path / "pairs"
    write_pairs(pairs)
    proc = run_csbot(
        "finetune", "train", "--pairs", str(pairs), "--base", "distilgpt2", "--out", str(tmp_path / "run"), check=False
    )
    assert proc.returncode == 1
    assert "distilgpt2" in proc.stderr and "--allow-download" in proc.stderr
    assert not (tmp_path / "run" / "final").exists()


def test_missing_pairs_say_how_to_make_them(tmp_path):
    proc = run_csbot(
        "finetune", "train", "--pairs", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), check=False
    )
    assert proc.returncode == 1 and "csbot finetune pairs" in proc.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--label-smoothing", "1.5", "--label-smoothing must be in [0, 1); got 1.5"),
        ("--evidence-order", "newest", "--evidence-order 'newest': use auto, retrieval or consensus"),
        ("--consensus-k", "1", "--consensus-k must be between 2 and 50; got 1"),
        ("--base", "gpt2 --pointer", "--pointer builds the scratch GPT-2 with a pointer"),
    ],
)
def test_a_bad_training_option_is_refused_before_anything_runs(tmp_path, flag, value, message):
    (tmp_path / "any.csv").write_text("instruction,intent,response\nhi,greeting,Hello!\n")
    proc = run_csbot(
        "finetune", "train", "--corpus", str(tmp_path / "any.csv"), "--out", str(tmp_path / "run"),
        flag, *value.split(), check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and message in proc.stderr
    assert not (tmp_path / "run").exists()
