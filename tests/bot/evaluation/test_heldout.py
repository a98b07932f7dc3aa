"""bot.evaluation.heldout: the learning loop's comparison scores what the live bot would send."""

from __future__ import annotations

import pytest

from bot.evaluation.heldout import evaluate_on_pairs, retrieval_on_pairs
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
    result = evaluate_on_pairs(tiny_model, PAIRS, generator=never)
    assert result["fallback_rate"] == 1.0
    assert result["rougeL_f1"] == retrieval_on_pairs(PAIRS)["rougeL_f1"]
    assert result["n"] == len(PAIRS)
    assert result["grounded_share"] < 1.0  # the two pairs with evidence were decoded and rejected


def test_an_empty_held_out_set_is_refused() -> None:
    with pytest.raises(Exception, match="no validation pairs"):
        retrieval_on_pairs([])
