"""`csbot build --generator-minutes`: the demo assistant gets a GPT-2 generator trained by
one `finetune round`, and a rebuild of the same data reuses it instead of training again."""

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO, run_csbot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def said(proc):
    return " ".join(proc.stdout.split())  # rich wraps long lines to the terminal width


def models(ws):
    return json.loads(run_csbot("models", "list", "--json", workspace=ws).stdout.strip().splitlines()[-1])


def demo_data_with_few_heldout(tmp_path, conversations=6):
    """The demo's data with its held-out file cut to a few conversations: an untrained
    model decodes every reply to full length, and scoring it on all 184 held-out pairs
    costs minutes without testing anything more."""
    data = shutil.copytree(REPO / "data", tmp_path / "data")
    lines = (data / "heldout.jsonl").read_text().splitlines(keepends=True)
    (data / "heldout.jsonl").write_text("".join(lines[:conversations]))
    return data


def test_build_trains_a_generator_once_and_the_assistant_uses_it_only_if_promoted(tmp_path):
    ws = tmp_path / "ws"
    build = ["build", "--data", str(demo_data_with_few_heldout(tmp_path)), "--generator-minutes", "0.1"]
    first = run_csbot(*build, workspace=ws)
    [model] = models(ws)
    used = "the GPT-2 generator" if model["promoted"] else "the retrieval composer"
    assert f"the assistant answers with {used}" in said(first)

    second = run_csbot(*build, workspace=ws)
    assert f"{model['id']} was trained on the same pairs with the same settings" in said(second)
    assert [m["id"] for m in models(ws)] == [model["id"]]

    reply = json.loads(run_csbot("ask", "what is your return policy?", workspace=ws).stdout.strip().splitlines()[-1])
    # a promoted generator writes the reply or is named in its fallback ("retrieval (gpt2 rejected)")
    assert ("gpt2" in reply["composer"]) == model["promoted"], reply


def test_a_negative_generator_budget_is_refused_before_anything_is_built(tmp_path):
    proc = run_csbot(
        "build", "--data", str(REPO / "data"), "--generator-minutes", "-1", workspace=tmp_path / "ws", check=False
    )
    assert proc.returncode != 0 and "--generator-minutes must be 0 or more" in proc.stderr
    assert not (tmp_path / "ws").exists()


def test_build_trains_the_generator_from_the_base_it_is_given(tmp_path, tiny_checkpoint):
    ws = tmp_path / "ws"
    data = demo_data_with_few_heldout(tmp_path, conversations=2)
    run_csbot(
        "build",
        "--data",
        str(data),
        "--generator-minutes",
        "0.05",
        "--generator-base",
        str(tiny_checkpoint),
        workspace=ws,
    )
    [model] = models(ws)
    assert model["base"] == str(tiny_checkpoint)
    # the checkpoint's own tokenizer and shape were kept, not a scratch model's
    config = json.loads((Path(model["path"]) / "config.json").read_text())
    assert config["n_embd"] == 32 and config["n_layer"] == 1


def test_a_generator_base_that_is_not_a_directory_is_refused_before_anything_is_built(tmp_path):
    proc = run_csbot(
        "build",
        "--data",
        str(REPO / "data"),
        "--generator-minutes",
        "1",
        "--generator-base",
        str(tmp_path / "nope"),
        workspace=tmp_path / "ws",
        check=False,
    )
    assert proc.returncode != 0 and "is not a directory" in proc.stderr
    assert not (tmp_path / "ws").exists()
