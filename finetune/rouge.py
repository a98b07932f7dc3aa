"""ROUGE-L F1 exactly as rouge-score computes it, fast enough to run inside a live turn.

The composer compares every candidate reply with the retrieved answers and with the other
candidates (`finetune.decoder.select_candidate`). rouge-score's `RougeScorer` re-tokenizes
both texts on every call and fills a Python table of len(a) x len(b) cells for the longest
common subsequence: about 2-4 ms for two 100-word answers on this project's 2-core machine,
so 5 candidates against 3 answers and each other cost a turn tens of milliseconds. Here each
text is tokenized once (with rouge-score's own tokenizer, so the figures are the same) and
the LCS length comes from a bit-parallel recurrence (Crochemore et al. 2001; Hyyrö 2004):
one big-integer update per token of one text, with the other text's token positions packed
into bit masks.

    tokens = [rouge_tokens(t) for t in texts]
    rouge_l_f1(tokens[0], tokens[1])   # == RougeScorer(["rougeL"]).score(texts[0], texts[1])["rougeL"].fmeasure

The evaluation (`bot.evaluation`) keeps scoring with rouge-score itself: the metric that
grades the composer does not share this code.
"""

from __future__ import annotations

from collections.abc import Sequence


def rouge_tokens(text: str) -> tuple[str, ...]:
    """rouge-score's tokens of `text` (lowercased, letters and digits only, no stemming)."""
    from rouge_score import tokenize

    return tuple(tokenize.tokenize(text, None))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences."""
    if not a or not b:
        return 0
    positions: dict[str, int] = {}
    for i, token in enumerate(a):
        positions[token] = positions.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full  # a zero bit marks a position of `a` that ends a longer common subsequence
    for token in b:
        u = v & positions.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_f1(reference: Sequence[str], candidate: Sequence[str]) -> float:
    """ROUGE-L F-measure of two token sequences (`rouge_tokens`); symmetric in its arguments."""
    lcs = lcs_length(reference, candidate)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(candidate), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)
