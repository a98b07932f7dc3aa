"""The learning round's decision and its record of the held-out set (no model trained here:
tests/e2e/test_cli_finetune_round.py runs whole rounds)."""

from __future__ import annotations

import pytest

from bot.learning import HALLUCINATION_TOLERANCE, heldout_record, is_better


def scores(rouge: float, hallucinated: float = 0.0) -> dict[str, float]:
    return {"rougeL_f1": rouge, "hallucinated_entity_rate": hallucinated}


def test_a_candidate_is_better_when_rouge_rises_by_the_gain_and_it_invents_no_more() -> None:
    better, reason = is_better(scores(0.31), scores(0.30), "retrieval", min_gain=0.005)
    assert better and "retrieval" in reason and "+0.0100" in reason


def test_a_gain_below_the_minimum_keeps_the_composer_in_use() -> None:
    better, reason = is_better(scores(0.301), scores(0.30), "gen-a", min_gain=0.005)
    assert not better and "below the required 0.005" in reason


@pytest.mark.parametrize(
    ("candidate", "current", "better"),
    [
        (HALLUCINATION_TOLERANCE, 0.0, True),  # within the tolerance even when the current invents nothing
        (0.05, 0.0, False),
        (0.05, 0.05, True),  # no worse than the composer in use
    ],
)
def test_hallucinated_entities_may_not_rise_past_the_tolerance(candidate, current, better) -> None:
    assert is_better(scores(0.4, candidate), scores(0.3, current), "gen-a", min_gain=0.0)[0] is better


def test_the_heldout_record_identifies_the_scored_pairs_and_their_files() -> None:
    manifest = {
        "sources": [
            {"name": "curated", "path": "data/heldout.jsonl", "sha256": "ab", "conversations": 2, "heldout": True},
            {"name": "extra", "path": "t.jsonl", "sha256": "cd", "conversations": 5, "heldout": False},
        ]
    }
    scored = [{"id": "p1", "source": "store"}, {"id": "p2", "source": "curated"}]
    record = heldout_record(manifest, scored, available=3, share=0.2)
    assert record["ids"] == ["p1", "p2"] and record["pairs"] == 2 and record["available"] == 3
    assert record["store_pairs"] == 1 and record["store_share"] == 0.2
    assert [f["name"] for f in record["files"]] == ["curated"]
    assert record["sha256"] == heldout_record(manifest, list(scored), 3, 0.2)["sha256"]
    assert record["sha256"] != heldout_record(manifest, scored[:1], 3, 0.2)["sha256"]
