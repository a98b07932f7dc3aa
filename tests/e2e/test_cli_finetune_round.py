"""`csbot finetune round` and `csbot finetune train --corpus` through the installed CLI,
with a tiny GPT-2 checkpoint the tests save themselves (fast to train, real all the same)."""

import hashlib
import json
import shutil

import pytest

from tests.e2e.test_cli_generation_eval import write_bitext
from tests.helpers import REPO, last_json, run_csbot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture()
def workspace(demo_workspace, tmp_path):
    # rounds register and promote models: never in the session's shared workspace
    ws = tmp_path / "ws"
    shutil.copytree(demo_workspace, ws)
    return ws


def transcripts(path, n):
    lines = (REPO / "data" / "conversations.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def round_(ws, tiny, logged, *extra):
    return last_json(
        run_csbot(
            "finetune",
            "round",
            "--transcripts",
            str(logged),
            "--base",
            str(tiny),
            "--max-minutes",
            "0.3",
            "--eval-limit",
            "12",
            *extra,
            workspace=ws,
        ).stdout
    )


def index_sources(ws):
    gen = (ws / "index" / "CURRENT").read_text().strip()
    units = (ws / "index" / gen / "units.jsonl").read_text(encoding="utf-8").splitlines()
    return {json.loads(u).get("source_id") for u in units}


def test_a_round_is_judged_on_the_shipped_held_out_set_and_a_better_candidate_waits_for_a_person(
    workspace, tiny_checkpoint, tmp_path
):
    logged = transcripts(tmp_path / "logged.jsonl", 60)
    # with no model promoted, the candidate is measured against the retrieval composer
    first = round_(workspace, tiny_checkpoint, logged, "--min-gain", "-1", "--require-approval", "--choose-agreement")
    assert first["current"]["id"] == "retrieval" and first["current"]["fallback_rate"] == 1.0
    assert first["held_out_pairs"] == 12 and 0.0 <= first["candidate"]["rougeL_f1"] <= 1.0
    better = first["candidate"]["hallucinated_entity_rate"] <= 0.01
    assert first["decision"] == ("awaiting_approval" if better else "kept"), first["reason"]
    assert not first["promoted"] and first["awaiting_approval"] == better

    # the held-out set: data/heldout.jsonl, recorded by hash and pair ids, never trained on or indexed
    shipped = REPO / "data" / "heldout.jsonl"
    held = first["held_out"]
    assert held["files"] == [
        {
            "name": "heldout.jsonl",
            "path": str(shipped),
            "sha256": hashlib.sha256(shipped.read_bytes()).hexdigest(),
            "conversations": 61,
        }
    ]
    assert len(held["ids"]) == 12 and all(i.startswith("heldout-") for i in held["ids"])
    # the agreement floor: chosen on the round's validation pairs, recorded in the model
    chosen = first["agreement"]
    assert chosen["min_agreement"] in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9) and chosen["n"] >= 1
    run = workspace / "finetune" / "rounds" / first["round"] / "run" / "final" / "csbot_model.json"
    assert json.loads(run.read_text())["generation"]["min_agreement"] == chosen["min_agreement"]
    pairs = workspace / "finetune" / "rounds" / first["round"] / "pairs"
    trained = (pairs / "train.jsonl").read_text() + (pairs / "valid.jsonl").read_text()
    assert '"heldout-' not in trained and first["pairs"]["heldout"] > 12
    # replies written while reading an order's record are left out of training and scoring
    assert first["excluded"]["after_lookup"] > 0 and first["settings"]["keep_after_lookup"] is False
    assert not any(str(s).startswith("heldout-") for s in index_sources(workspace))

    models = last_json(run_csbot("models", "list", "--json", workspace=workspace).stdout)
    assert [(m["id"], m["state"]) for m in models] == [
        (first["candidate"]["id"], "awaiting approval" if better else "registered")
    ]
    in_use = "retrieval"
    if better:  # a person approves it: promoted through `promote`'s code
        approved = last_json(run_csbot("models", "approve", first["candidate"]["id"], workspace=workspace).stdout)
        assert approved["promoted"] == first["candidate"]["id"]
        in_use = first["candidate"]["id"]

    # a gain of more than 1.0 ROUGE-L is impossible: the candidate is registered, not promoted
    second = round_(workspace, tiny_checkpoint, logged, "--min-gain", "1.1")
    assert second["agreement"] is None  # not asked for: no floor chosen
    assert not second["promoted"] and "below the required 1.1" in second["reason"]
    assert second["decision"] == "kept" and second["current"]["id"] == in_use
    # the same fixed set both times, both composers scored on it
    assert second["held_out"]["ids"] == held["ids"] and second["held_out"]["sha256"] == held["sha256"]
    models = last_json(run_csbot("models", "list", "--json", workspace=workspace).stdout)
    assert {m["id"]: m["promoted"] for m in models} == {
        first["candidate"]["id"]: better,
        second["candidate"]["id"]: False,
    }
    report = workspace / "finetune" / "rounds" / second["round"] / "round.json"
    assert json.loads(report.read_text())["candidate"] == second["candidate"]


def test_a_round_with_too_few_conversations_is_refused_with_the_counts(workspace, tiny_checkpoint, tmp_path):
    proc = run_csbot(
        "finetune",
        "round",
        "--transcripts",
        str(transcripts(tmp_path / "few.jsonl", 3)),
        "--base",
        str(tiny_checkpoint),
        workspace=workspace,
        check=False,
    )
    assert proc.returncode == 1 and "need at least 20 pairs" in proc.stderr
    assert not (workspace / "models").exists() or not any((workspace / "models").iterdir())


def test_a_round_without_a_held_out_set_is_refused_before_training(workspace, tiny_checkpoint, tmp_path):
    # built from a data folder without heldout.jsonl, and no human agent has answered anyone yet
    for name in ("store.db", "store.db-wal", "store.db-shm"):  # other tests' turns are not ours
        (workspace / name).unlink(missing_ok=True)
    manifest = json.loads((workspace / "workspace.json").read_text())
    (workspace / "workspace.json").write_text(json.dumps({**manifest, "data_dir": str(tmp_path)}))
    proc = run_csbot(
        "finetune",
        "round",
        "--transcripts",
        str(transcripts(tmp_path / "logged.jsonl", 60)),
        "--base",
        str(tiny_checkpoint),
        workspace=workspace,
        check=False,
    )
    assert proc.returncode == 1 and "held-out pairs" in proc.stderr and "--heldout FILE" in proc.stderr
    assert not (workspace / "models").exists() or not any((workspace / "models").iterdir())


def test_train_on_a_corpus_leaves_each_rows_own_answer_out_of_its_evidence(tiny_checkpoint, tmp_path):
    corpus = tmp_path / "corpus.csv"
    write_bitext(corpus, copies=3, start=1)
    out = tmp_path / "run"
    metrics = last_json(
        run_csbot(
            "finetune",
            "train",
            "--corpus",
            str(corpus),
            "--base",
            str(tiny_checkpoint),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--evidence-k",
            "2",
            "--max-target-tokens",
            "48",
            "--no-register",
        ).stdout
    )
    assert metrics["n_train"] + metrics["n_valid"] == 36
    pairs = [
        json.loads(line)
        for name in ("train.jsonl", "valid.jsonl")
        for line in (out / "pairs" / name).read_text().splitlines()
    ]
    for pair in pairs:
        # the default "auto" evidence order weighs a vote of up to 20 answers (the prompt reads
        # 2); identical answers are folded into one unit by the index, so some pairs get fewer
        assert 1 <= len(pair["evidence"]) <= 20
        assert all(e["id"] != pair["conversation_id"] for e in pair["evidence"])
    generation = json.loads((out / "final" / "csbot_model.json").read_text())["generation"]
    assert generation["evidence_k"] == 2 and generation["max_new_tokens"] == 48
    assert 0.0 <= generation["min_overlap"] <= 1.0
