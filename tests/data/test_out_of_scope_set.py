"""The out-of-scope question set in data/out_of_scope/: well formed, big and varied enough, no
copies of the training rows, and splits that the file itself carries and that never move."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import subprocess
import sys
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

import pytest

from tests.helpers import last_json

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
QUESTIONS = DATA / "out_of_scope" / "questions.jsonl"
OUT_OF_SCOPE = "out_of_scope"
DEV_SHARE = 0.4
# SHA-256 over every row's (split, label, domain, text), sorted: the split is chosen once and
# written into the file, and the test part must never change (nothing may be tuned on it).
# Adding rows changes it too: give them a split the same way (see the README) and update it.
ROWS_SHA256 = "75c45ce5bbf7d8721618f8b7d1206768835c7148bf8189ffeb933fb7831fd947"


@cache
def questions() -> list[dict]:
    return [json.loads(line) for line in QUESTIONS.read_text("utf-8").splitlines() if line.strip()]


@cache
def intent_rows() -> list[dict]:
    with (DATA / "intents.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def normalised(text: str) -> str:
    """Lower case, letters and digits only: two rows that differ in case or punctuation alone
    are the same question."""
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def stratum(row: dict) -> str:
    return row.get("domain") or row["label"]


def test_every_line_is_a_question_row():
    lines = [line for line in QUESTIONS.read_text("utf-8").splitlines() if line.strip()]
    assert len(lines) == len(questions())
    for row in questions():
        expected_keys = {"text", "label", "split"} | ({"domain"} if row["label"] == OUT_OF_SCOPE else set())
        assert set(row) == expected_keys, row
        assert isinstance(row["text"], str) and row["text"].strip() == row["text"] and row["text"], row
        assert row["split"] in {"dev", "test"}, row
        if row["label"] == OUT_OF_SCOPE:
            assert re.fullmatch(r"[a-z_]+", row["domain"]), row


def test_at_least_500_out_of_scope_questions_in_at_least_20_domains():
    domains = Counter(row["domain"] for row in questions() if row["label"] == OUT_OF_SCOPE)
    assert sum(domains.values()) >= 500
    assert len(domains) >= 20
    # no domain is a token few: each is big enough to report a flagged share on both splits
    assert min(domains.values()) >= 15, domains


def test_at_least_200_in_scope_questions_labelled_with_the_demo_intents():
    demo_intents = {row["intent"] for row in intent_rows()}
    labels = Counter(row["label"] for row in questions() if row["label"] != OUT_OF_SCOPE)
    assert sum(labels.values()) >= 200
    assert set(labels) == demo_intents, set(labels) ^ demo_intents
    assert min(labels.values()) >= 5, labels


def test_no_question_appears_twice():
    counts = Counter(normalised(row["text"]) for row in questions())
    assert [text for text, n in counts.items() if n > 1] == []


def test_no_question_copies_a_training_row():
    training = {normalised(row["text"]) for row in intent_rows()}
    copies = [row["text"] for row in questions() if normalised(row["text"]) in training]
    assert copies == []


def test_each_domain_and_intent_is_split_40_60():
    by_stratum: dict[str, Counter] = defaultdict(Counter)
    for row in questions():
        by_stratum[stratum(row)][row["split"]] += 1
    for name, splits in by_stratum.items():
        n = splits["dev"] + splits["test"]
        assert math.isclose(splits["dev"], DEV_SHARE * n, abs_tol=0.5), (name, splits)
        assert splits["test"] > 0 and splits["dev"] > 0, (name, splits)


def test_rows_and_their_splits_are_the_committed_ones():
    digest = hashlib.sha256()
    for key in sorted((r["split"], r["label"], r.get("domain") or "", r["text"]) for r in questions()):
        digest.update("\t".join(key).encode() + b"\n")
    assert digest.hexdigest() == ROWS_SHA256, (
        "data/out_of_scope/questions.jsonl changed: its test split must never move; to add rows, "
        "give them a split as data/out_of_scope/README.md says and update ROWS_SHA256 here"
    )


@pytest.mark.slow
def test_the_benchmark_scores_the_shipped_classifier_and_the_previous_default_on_every_test_question():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_oos.py"), "--data", str(DATA), "--no-study"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=True,
    )
    result = last_json(proc.stdout)
    test_rows = [row for row in questions() if row["split"] == "test"]
    oos_domains = {row["domain"] for row in test_rows if row["label"] == OUT_OF_SCOPE}
    test = result["shipped"]["test"]
    assert test["n_out_of_scope"] == sum(row["label"] == OUT_OF_SCOPE for row in test_rows)
    assert test["n_in_scope"] == sum(row["label"] != OUT_OF_SCOPE for row in test_rows)
    assert set(test["per_domain_flagged"]) == oos_domains
    # what `csbot build --data data` ships: data/domain.json's setting, chosen on the dev split
    assert result["shipped"]["config"]["oos_score"] == "nearest"
    assert result["previous_default"]["config"]["oos_score"] == "combined"  # the library's, beside it
    # the shipped calibration, which never sees an OOS question, meets both targets on test
    assert test["oos_flagged"] >= 0.9
    assert test["in_scope_accuracy_with_oos"] <= test["in_scope_accuracy_without_oos"]
    assert test["in_scope_points_lost"] <= 2.0
    assert result["shipped"]["meets_targets_on_test"] is True
    previous = result["previous_default"]["test"]
    assert previous["n_out_of_scope"] == test["n_out_of_scope"] and previous["oos_flagged"] >= 0.9
    assert "dev_study" not in result
