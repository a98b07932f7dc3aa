"""The learning rate a training starts from, by what it starts from."""

from __future__ import annotations

import json
from pathlib import Path

from bot.training import PRETRAINED_LR, SCRATCH_LR, default_lr
from finetune.checkpoint import MODEL_META


def test_scratch_trains_at_the_recipe_rate_and_a_foreign_checkpoint_is_nudged(tmp_path: Path) -> None:
    assert default_lr("scratch") == SCRATCH_LR
    assert default_lr("gpt2") == PRETRAINED_LR  # a hub name: nothing of ours describes it
    assert default_lr(str(tmp_path)) == PRETRAINED_LR  # a checkpoint csbot did not train
    assert SCRATCH_LR > PRETRAINED_LR


def test_a_model_csbot_trained_continues_at_the_rate_it_was_trained_at(tmp_path: Path) -> None:
    (tmp_path / MODEL_META).write_text(json.dumps({"base": "scratch", "train_config": {"lr": 7e-4}}))
    assert default_lr(str(tmp_path)) == 7e-4


def test_metadata_without_a_usable_rate_falls_back_to_the_pretrained_rate(tmp_path: Path) -> None:
    for meta in ("not json", json.dumps({"train_config": {"lr": -1}}), json.dumps(["a list"])):
        (tmp_path / MODEL_META).write_text(meta)
        assert default_lr(str(tmp_path)) == PRETRAINED_LR
