"""finetune.rouge gives rouge-score's own ROUGE-L F1, token for token."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from finetune.rouge import lcs_length, rouge_l_f1, rouge_tokens

SCORER = rouge_scorer.RougeScorer(["rougeL"])
# few distinct words, so that long common subsequences (and ties) are frequent
WORDS = st.sampled_from(["order", "refund", "the", "your", "{{Order Number}}", "Héllo", "12", "a-b", "!", "you're"])
TEXTS = st.lists(WORDS, max_size=70).map(" ".join)


def reference_lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


@settings(max_examples=300, deadline=None)
@given(TEXTS, TEXTS)
def test_it_equals_rouge_score_on_any_two_texts(reference: str, candidate: str) -> None:
    expected = SCORER.score(reference, candidate)["rougeL"].fmeasure
    assert rouge_l_f1(rouge_tokens(reference), rouge_tokens(candidate)) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 3).map(str), max_size=130), st.lists(st.integers(0, 3).map(str), max_size=130))
def test_the_bit_parallel_lcs_equals_the_table_past_64_tokens(a: list[str], b: list[str]) -> None:
    assert lcs_length(a, b) == reference_lcs(a, b)


def test_tokens_are_rouge_scores_lowercased_alphanumerics() -> None:
    assert rouge_tokens("Your {{Order Number}} ships, Héllo!") == ("your", "order", "number", "ships", "h", "llo")
    assert rouge_l_f1((), ("a",)) == 0.0
    assert rouge_l_f1(("a", "b", "c"), ("a", "c")) == 2 * 2 / (3 + 2)
