"""finetune.decoder without a model: unset generation settings come from the model's metadata,
the candidate sent is the guard-passed one agreeing most with the references, and the
retrieval vote leads a list of retrieved answers."""

from __future__ import annotations

import dataclasses

import pytest

from finetune.decoder import (
    FALLBACK_GENERATION,
    GeneratorConfig,
    choose_evidence_order,
    resolve_generation,
    select_candidate,
    vote_first,
    votes_ranked,
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


def test_the_number_of_answers_compared_follows_the_model_unless_configured() -> None:
    trained = {"generation": {"evidence_order": "consensus", "consensus_k": 20}}
    assert resolve_generation(GeneratorConfig(), trained).consensus_k == 20
    assert resolve_generation(GeneratorConfig(consensus_k=5), trained).consensus_k == 5
    assert resolve_generation(GeneratorConfig(), {}).consensus_k == FALLBACK_GENERATION["consensus_k"] == 3


def test_the_agreement_floor_follows_the_model_unless_configured_and_is_off_for_a_model_that_does_not_say() -> None:
    trained = {"generation": {"min_agreement": 0.6}}
    assert resolve_generation(GeneratorConfig(), trained).min_agreement == 0.6
    assert resolve_generation(GeneratorConfig(min_agreement=0.0), trained).min_agreement == 0.0
    assert resolve_generation(GeneratorConfig(), {}).min_agreement == FALLBACK_GENERATION["min_agreement"] == 0.0


def test_the_passing_candidate_agreeing_most_with_the_references_is_chosen() -> None:
    references = ["your order has left our warehouse and is on its way"]
    texts = ["thanks for waiting", "your order has left our warehouse", "your order left the warehouse"]
    choice = select_candidate(texts, [True, False, True], references)
    assert (choice.index, choice.candidates, choice.passing) == (2, 3, 2)
    # none passing: the first (greedy) candidate, for the guard to reject with its reason
    assert select_candidate(texts, [False, False, False], references).index == 0
    with pytest.raises(ValueError, match="3 candidates but 2 guard verdicts"):
        select_candidate(texts, [True, True], references)


# the retrieval vote leading a list of retrieved answers (a pair's evidence, a prompt's hits)
ODD = {"id": "c9", "text": "Please contact our partner store about that.", "score": 0.95}
USUAL = {"id": "c3", "text": "Your order {{Order Number}} has left our warehouse and is on its way.", "score": 0.9}
CLOSE = {"id": "c4", "text": "Order {{Order Number}} has left our warehouse; it is on its way to you.", "score": 0.85}


def pair(target: str, *answers: dict) -> dict:
    return {"target": target, "evidence": list(answers)}


def test_the_validation_targets_choose_the_vote_where_it_agrees_with_them_better() -> None:
    # the best-ranked answer is off-topic, and what the others agree on is what people reply
    voted = [pair("Your order has left our warehouse and is on its way.", ODD, USUAL, CLOSE)] * 3
    choice = choose_evidence_order(voted, sizes=(1, 3))
    assert (choice.evidence_order, choice.consensus_k) == ("consensus", 3)
    assert choice.scores[3] > choice.scores[1]


def test_the_best_ranked_answer_is_kept_where_the_vote_does_worse_or_no_better() -> None:
    # the best-ranked answer is the right template; the others belong to other topics
    ranked = [pair("Please contact our partner store about that.", ODD, USUAL, CLOSE)] * 3
    choice = choose_evidence_order(ranked, sizes=(1, 3, 5))
    assert (choice.evidence_order, choice.consensus_k) == ("retrieval", FALLBACK_GENERATION["consensus_k"])
    assert choice.scores[1] == 1.0 > choice.scores[3]
    # with two answers the vote is a tie, which goes to the best-ranked one: no vote
    two = [pair("Please contact our partner store about that.", ODD, USUAL)] * 2
    assert choose_evidence_order(two, sizes=(1, 2)).evidence_order == "retrieval"
    with pytest.raises(ValueError, match="needs validation pairs"):
        choose_evidence_order([])


def test_the_answer_agreeing_most_with_the_others_leads_and_the_rest_keep_their_order() -> None:
    assert [e["id"] for e in vote_first([ODD, USUAL, CLOSE])] == ["c3", "c9", "c4"]
    # only the top consensus_k vote: with two voters the tie goes to the best-ranked
    assert [e["id"] for e in vote_first([ODD, USUAL, CLOSE], consensus_k=2)] == ["c9", "c3", "c4"]


def test_answers_rank_by_their_agreement_with_the_others_and_the_vote_leads() -> None:
    assert [e["id"] for e in votes_ranked([ODD, USUAL, CLOSE])] == ["c3", "c4", "c9"]
    assert votes_ranked([ODD, USUAL, CLOSE])[0] is vote_first([ODD, USUAL, CLOSE])[0]
    # only the top consensus_k distinct texts are ranked; a repeated text once
    assert [e["id"] for e in votes_ranked([ODD, {**ODD, "id": "c10"}, USUAL, CLOSE], consensus_k=2)] == ["c9", "c3"]
    assert votes_ranked([ODD]) == [ODD]
    assert votes_ranked([]) == []


def test_repeated_texts_vote_once_and_too_few_voters_change_nothing() -> None:
    # ODD twice must not outvote the two answers that agree
    twice = {**ODD, "id": "c10"}
    assert vote_first([ODD, twice, USUAL, CLOSE])[0]["id"] == "c3"
    assert vote_first([ODD]) == [ODD]
    assert vote_first([]) == []
    assert vote_first(["plain text evidence", "another"]) == ["plain text evidence", "another"]
