"""finetune.decoder without a model: unset generation settings come from the model's metadata,
and the candidate sent is the guard-passed one agreeing most with the references."""

from __future__ import annotations

import dataclasses

import pytest

from finetune.decoder import (
    FALLBACK_GENERATION,
    GeneratorConfig,
    resolve_generation,
    select_candidate,
)
from finetune.decoding import UnsupportedModelError


def test_unset_settings_come_from_the_model_then_the_fallbacks() -> None:
    resolved = resolve_generation(GeneratorConfig(min_overlap=0.3), {"generation": {"max_new_tokens": 40}})
    assert (resolved.max_new_tokens, resolved.min_overlap) == (40, 0.3)
    assert resolved.evidence_k == FALLBACK_GENERATION["evidence_k"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.candidates = 5  # type: ignore[misc]  # the point: a config is never changed in place


def test_the_evidence_order_follows_the_model_unless_configured() -> None:
    trained = {"generation": {"evidence_order": "consensus"}}
    assert resolve_generation(GeneratorConfig(), trained).evidence_order == "consensus"
    assert resolve_generation(GeneratorConfig(evidence_order="retrieval"), trained).evidence_order == "retrieval"
    assert resolve_generation(GeneratorConfig(), {}).evidence_order == "retrieval"  # a model that does not say
    with pytest.raises(UnsupportedModelError, match="evidence_order 'newest'"):
        resolve_generation(GeneratorConfig(), {"generation": {"evidence_order": "newest"}})


def test_the_passing_candidate_agreeing_most_with_the_references_is_chosen() -> None:
    references = ["your order has left our warehouse and is on its way"]
    texts = ["thanks for waiting", "your order has left our warehouse", "your order left the warehouse"]
    choice = select_candidate(texts, [True, False, True], references)
    assert (choice.index, choice.candidates, choice.passing) == (2, 3, 2)
    # none passing: the first (greedy) candidate, for the guard to reject with its reason
    assert select_candidate(texts, [False, False, False], references).index == 0
    with pytest.raises(ValueError, match="3 candidates but 2 guard verdicts"):
        select_candidate(texts, [True, True], references)
