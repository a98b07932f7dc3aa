"""Near-duplicate detection for replies: normalised token sets and Jaccard similarity.

Support corpora repeat the same canned reply with small variations (an order number, a
name, punctuation). Showing five copies of one answer wastes the composer's evidence
slots, so the index folds them into one hit.
"""

from __future__ import annotations

import re

from retrieval.entities import PLACEHOLDER_RE, mask_entities

_DIGITS = re.compile(r"\d+")
_NON_WORD = re.compile(r"[^\w\s]|_")


def normalise(text: str) -> frozenset[str]:
    """Token set of `text`: lowercased, personal values and placeholders as one token,
    digit runs as `0`, punctuation removed."""
    text = mask_entities(text)[0]
    text = PLACEHOLDER_RE.sub(" phx ", text)
    text = _DIGITS.sub(" 0 ", text.lower())
    return frozenset(_NON_WORD.sub(" ", text).split())


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|; two empty sets count as identical."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
