"""The kinds of personal value and their placeholders, a found value (`PiiSpan`), and how
overlapping findings are resolved and masked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PLACEHOLDERS: dict[str, str] = {
    "email": "{{Email}}",
    "card_number": "{{Card Number}}",
    "phone": "{{Phone Number}}",
    "order_id": "{{Order Number}}",
    "iban": "{{IBAN}}",
    "tracking_number": "{{Tracking Number}}",
    "account_number": "{{Account Number}}",
    "street_address": "{{Street Address}}",
    "zip_code": "{{Zip Code}}",
    "username": "{{Username}}",
    "name": "{{Name}}",
}
PII_KINDS: tuple[str, ...] = tuple(PLACEHOLDERS)

# When two findings overlap, the one with the lower rank wins (then the longer one): a
# validated or cue-led finding beats a bare shape ("tracking 7489 2736 4512" is no phone).
_RANK = {
    "email": 0,
    "iban": 1,
    "tracking_number": 1,
    "account_number": 2,
    "card_number": 3,
    "street_address": 3,
    "phone": 4,
    "zip_code": 4,
    "username": 5,
    "order_id": 6,
    "name": 7,
}


@dataclass(frozen=True)
class PiiSpan:
    """One personal value in a text: `text[start:end]` is of `kind` (a key of PLACEHOLDERS)."""

    start: int
    end: int
    kind: str

    @property
    def placeholder(self) -> str:
        return PLACEHOLDERS[self.kind]


def resolve_spans(candidates: Iterable[PiiSpan], blocked: Sequence[tuple[int, int]]) -> list[PiiSpan]:
    """Non-overlapping spans: by rank, then the longer; none that touches a blocked range."""
    chosen: list[PiiSpan] = []
    taken: list[tuple[int, int]] = list(blocked)
    for s in sorted(candidates, key=lambda s: (_RANK[s.kind], -(s.end - s.start), s.start)):
        if s.end <= s.start or any(s.start < e and b < s.end for b, e in taken):
            continue
        chosen.append(s)
        taken.append((s.start, s.end))
    return sorted(chosen, key=lambda s: s.start)


def apply_spans(text: str, spans: Sequence[PiiSpan]) -> tuple[str, Counter[str]]:
    """`text` with each span replaced by its placeholder (a value inside braces, Bitext's
    "{{732201349959}}", takes its braces with it), and the count of each kind replaced."""
    counts: Counter[str] = Counter()
    out: list[str] = []
    pos = 0
    for s in spans:
        start, end = s.start, s.end
        if text[start - 2 : start] == "{{" and text[end : end + 2] == "}}":  # "{{732201349959}}"
            start, end = start - 2, end + 2
        out += [text[pos:start], s.placeholder]
        counts[s.kind] += 1
        pos = end
    out.append(text[pos:])
    return "".join(out), counts
