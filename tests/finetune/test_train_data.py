"""finetune.train_data.vote_first: the retrieval vote leads a pair's evidence (pure, no model)."""

from __future__ import annotations

from finetune.train_data import vote_first

ODD = {"id": "c9", "text": "Please contact our partner store about that.", "score": 0.95}
USUAL = {"id": "c3", "text": "Your order {{Order Number}} has left our warehouse and is on its way.", "score": 0.9}
CLOSE = {"id": "c4", "text": "Order {{Order Number}} has left our warehouse; it is on its way to you.", "score": 0.85}


def test_the_answer_agreeing_most_with_the_others_leads_and_the_rest_keep_their_order() -> None:
    assert [e["id"] for e in vote_first([ODD, USUAL, CLOSE])] == ["c3", "c9", "c4"]
    # only the top consensus_k vote: with two voters the tie goes to the best-ranked
    assert [e["id"] for e in vote_first([ODD, USUAL, CLOSE], consensus_k=2)] == ["c9", "c3", "c4"]


def test_repeated_texts_vote_once_and_too_few_voters_change_nothing() -> None:
    # ODD twice must not outvote the two answers that agree
    twice = {**ODD, "id": "c10"}
    assert vote_first([ODD, twice, USUAL, CLOSE])[0]["id"] == "c3"
    assert vote_first([ODD]) == [ODD]
    assert vote_first([]) == []
    assert vote_first(["plain text evidence", "another"]) == ["plain text evidence", "another"]
