"""`csbot import` and `csbot eval` through the installed CLI."""

import csv
import json
import random
import shutil

import pytest

from tests.helpers import REPO, last_json, run_csbot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NEW_CONVERSATION = {
    "id": "imported-0001",
    "intent": "gift_card",
    "outcome": "resolved",
    "turns": [
        {"role": "customer", "text": "Can I pay for my order with a gift card voucher from my aunt?"},
        {"role": "agent", "text": "Yes: enter the gift card code at checkout under 'Gift card or voucher'."},
    ],
}


@pytest.fixture
def workspace_copy(demo_workspace, tmp_path):
    copy = tmp_path / "ws"
    shutil.copytree(demo_workspace, copy)
    return copy


def index_size(workspace):
    current = (workspace / "index" / "CURRENT").read_text().strip()
    return json.loads((workspace / "index" / current / "manifest.json").read_text())["n_units"]


def test_import_adds_units_without_a_rebuild_and_refuses_a_second_import(workspace_copy, tmp_path):
    before = index_size(workspace_copy)
    path = tmp_path / "new.jsonl"
    path.write_text(json.dumps(NEW_CONVERSATION) + "\n")
    summary = last_json(run_csbot("import", str(path), "--format", "jsonl", workspace=workspace_copy).stdout)
    assert summary["units_added"] == 1
    assert index_size(workspace_copy) == before + 1 == summary["index_size"]

    again = run_csbot("import", str(path), "--format", "jsonl", workspace=workspace_copy, check=False)
    assert again.returncode == 1 and "already in the index" in again.stderr
    assert index_size(workspace_copy) == before + 1


def test_a_malformed_import_names_the_row_and_imports_nothing(workspace_copy, tmp_path):
    before = index_size(workspace_copy)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(NEW_CONVERSATION) + "\n{not json\n")
    proc = run_csbot("import", str(path), "--format", "jsonl", workspace=workspace_copy, check=False)
    assert proc.returncode == 1
    assert "row 2" in proc.stderr and "Nothing was imported" in proc.stderr
    assert index_size(workspace_copy) == before


def test_a_csv_import_with_a_wrong_column_name_says_which_flag_to_pass(workspace_copy, tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text("q,a\nDo you ship to Canada?,Yes we do.\n")
    proc = run_csbot("import", str(path), "--format", "csv", workspace=workspace_copy, check=False)
    assert proc.returncode == 1 and "question" in proc.stderr
    ok = run_csbot(
        "import",
        str(path),
        "--format",
        "csv",
        "--question-column",
        "q",
        "--answer-column",
        "a",
        workspace=workspace_copy,
    )
    assert last_json(ok.stdout)["units_added"] == 1


def split_demo_intents(tmp_path, oos=("store_info", "promo_code")):
    """Train/test CSVs from data/intents.csv; rows of the `oos` intents become OOS test rows."""
    with (REPO / "data" / "intents.csv").open() as f:
        rows = list(csv.DictReader(f))
    random.Random(0).shuffle(rows)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    with train.open("w", newline="") as ftr, test.open("w", newline="") as fte:
        wtr, wte = csv.writer(ftr), csv.writer(fte)
        wtr.writerow(["text", "category"])
        wte.writerow(["text", "category"])
        for i, row in enumerate(rows):
            if row["intent"] in oos:
                wte.writerow([row["text"], "OOS"])
            elif i % 5 == 0:
                wte.writerow([row["text"], row["intent"]])
            else:
                wtr.writerow([row["text"], row["intent"]])
    return train, test


def test_eval_intents_reports_accuracy_and_oos_metrics_and_writes_a_report(tmp_path):
    train, test = split_demo_intents(tmp_path)
    report = tmp_path / "report"
    proc = run_csbot(
        "eval", "intents", "--train", str(train), "--test", str(test), "--oos-label", "OOS", "--report", str(report)
    )
    result = last_json(proc.stdout)
    assert result["accuracy"] > 0.85
    assert 0 <= result["oos_recall"] <= 1 and 0 <= result["oos_precision"] <= 1
    assert result["in_scope_accuracy"] <= result["accuracy"]
    assert result["n_train"] + result["n_test"] > 900
    assert (report / "confusion.png").stat().st_size > 1000
    assert json.loads((report / "report.json").read_text())["accuracy"] == result["accuracy"]


def test_eval_intents_refuses_unknown_test_labels(tmp_path):
    train, test = split_demo_intents(tmp_path)
    proc = run_csbot("eval", "intents", "--train", str(train), "--test", str(test), check=False)
    assert proc.returncode == 1 and "--oos-label" in proc.stderr


@pytest.mark.shared
def test_eval_retrieval_on_a_slice_of_bitext(shared_datasets, tmp_path):
    with (shared_datasets / "bitext" / "train.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    random.Random(1).shuffle(rows)
    corpus, test = tmp_path / "corpus.csv", tmp_path / "test.csv"
    for path, part in ((corpus, rows[:600]), (test, rows[600:700])):
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(part)
    result = last_json(run_csbot("eval", "retrieval", "--corpus", str(corpus), "--test", str(test)).stdout)
    assert result["n_corpus"] == 600 and result["n_test"] == 100
    assert result["top1_intent_match"] > 0.8
    assert result["recall_at_5"] >= result["top1_intent_match"]
    assert 0 < result["p50_ms"] <= result["p95_ms"]
