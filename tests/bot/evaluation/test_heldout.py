"""bot.evaluation.heldout: the learning loop's comparison scores what the live bot would send."""

from __future__ import annotations

import pytest

from bot.evaluation.heldout import (
    AsLive,
    choose_min_agreement,
    evaluate_on_pairs,
    pick_min_agreement,
    retrieval_on_pairs,
)
from finetune.decoder import GeneratorConfig
from tests.bot.composers.test_generative import make_tiny_model


def pair(pid: str, question: str, target: str, *evidence: str) -> dict:
    return {
        "id": pid,
        "context": [{"role": "customer", "text": question}],
        "evidence": [{"id": f"{pid}-e{i}", "text": t, "score": 0.9} for i, t in enumerate(evidence)],
        "target": target,
    }


PAIRS = [
    pair(
        "p1",
        "how long does standard shipping take?",
        "Standard shipping takes 3-5 business days after dispatch.",
        "Standard shipping takes 3-5 business days after dispatch, and Express takes 1-2 business days.",
        "Express costs $12.99 and arrives in 1-2 business days.",
    ),
    pair(
        "p2",
        "can I return a jacket I wore once?",
        "Items can be returned within 30 days of delivery if unused.",
        "Items can be returned within 30 days of delivery - pack the item unused in its original packaging.",
    ),
    pair("p3", "thanks, that's all", "You're welcome! Have a great day."),  # nothing retrieved
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("heldout") / "final")


def test_a_model_the_guard_never_passes_scores_exactly_as_the_retrieval_composer(tiny_model) -> None:
    # min_overlap above 1: no reply can share enough words with the sources, so every turn
    # falls back, and the fallback is the very reply the retrieval baseline is scored on
    never = GeneratorConfig(candidates=3, min_overlap=1.01, max_new_tokens=8)
    result = evaluate_on_pairs(tiny_model, PAIRS, AsLive(never))
    assert result["fallback_rate"] == 1.0
    assert result["rougeL_f1"] == retrieval_on_pairs(PAIRS)["rougeL_f1"]
    assert result["n"] == len(PAIRS)
    assert result["grounded_share"] < 1.0  # the two pairs with evidence were decoded and rejected


def test_an_empty_held_out_set_is_refused() -> None:
    with pytest.raises(Exception, match="no validation pairs"):
        retrieval_on_pairs([])


def test_the_agreement_floor_keeps_gpt2_where_it_agrees_and_retrieval_where_it_does_not() -> None:
    # (GPT-2's ROUGE-L if sendable, retrieval's, GPT-2's agreement with the retrieved answers)
    rows = [(0.9, 0.6, 0.8), (0.8, 0.7, 0.75), (0.1, 0.5, 0.3), (0.2, 0.6, 0.2), (None, 0.4, 0.0)] * 4
    picked = pick_min_agreement(rows, (0.0, 0.5, 0.9))
    assert picked["min_agreement"] == 0.5
    assert picked["scores"] == {0.0: 0.48, 0.5: 0.64, 0.9: 0.56}
    assert picked["gpt2_share"] == {0.0: 0.8, 0.5: 0.4, 0.9: 0.0} and picked["gain_ci"][0] > 0
    # a tie goes to the lower floor: more replies are GPT-2's
    assert pick_min_agreement([(0.5, 0.5, 0.1)], (0.0, 0.5))["min_agreement"] == 0.0
    # a floor whose gain over none is noise is not taken: here one row of 20 gains
    noisy = [(0.9, 0.6, 0.8)] * 19 + [(0.1, 0.5, 0.3)]
    picked = pick_min_agreement(noisy, (0.0, 0.5))
    assert picked["scores"][0.5] > picked["scores"][0.0] and picked["gain_ci"][0] <= 0
    assert picked["min_agreement"] == 0.0
    with pytest.raises(ValueError, match="no rows"):
        pick_min_agreement([])


def test_a_model_the_guard_never_passes_is_given_no_floor_and_bad_floors_are_refused(tiny_model) -> None:
    never = GeneratorConfig(candidates=3, min_overlap=1.01, max_new_tokens=8)
    chosen = choose_min_agreement(tiny_model, PAIRS, AsLive(never), floors=(0.0, 0.5))
    # nothing GPT-2 wrote may be sent at any floor: every floor scores retrieval's figure
    retrieval = retrieval_on_pairs(PAIRS)["rougeL_f1"]
    assert chosen["scores"] == {0.0: retrieval, 0.5: retrieval} and chosen["min_agreement"] == 0.0
    assert chosen["gpt2_share"] == {0.0: 0.0, 0.5: 0.0} and chosen["n"] == len(PAIRS)
    with pytest.raises(ValueError, match="between 0 and 1"):
        choose_min_agreement(tiny_model, PAIRS, floors=(1.5,))
