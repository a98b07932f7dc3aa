"""Where the PII scrubber looks: a text with its lowercase form, words and the stretches
around its digits (`ScanText`), and patterns tried only near their trigger words (`Cue`).

Python's regular expressions try every position of a text, which for a long reply costs far
more than finding a few words or digits first; every finder goes through these two.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

LOWER_WORDS_RE = re.compile(r"[a-zß-öø-ÿ]+")
DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class ScanText:
    """One text and what several finders look up in it: its lowercase form, its lowercase
    words, and the stretches around its digits (the only places a number can be)."""

    text: str
    lowered: str
    words: frozenset[str]
    near_digits: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, text: str) -> ScanText:
        lowered = text.lower()
        if len(lowered) != len(text):  # lowercasing changed the length: keep positions aligned
            lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        digits = [(m.start(), m.end()) for m in DIGITS.finditer(text)]
        return cls(
            text, lowered, frozenset(LOWER_WORDS_RE.findall(lowered)), tuple(merged_windows(text, digits, 45, 60))
        )

    def has(self, words: Iterable[str]) -> bool:
        return not self.words.isdisjoint(words)

    def scan(
        self, pattern: re.Pattern[str], windows: Sequence[tuple[int, int]] | None = None
    ) -> Iterable[re.Match[str]]:
        """`pattern.finditer` inside each window (by default: near the digits) only;
        lookbehinds still see the text before a window."""
        for a, b in self.near_digits if windows is None else windows:
            yield from pattern.finditer(self.text, a, b)


def merged_windows(text: str, hits: Iterable[tuple[int, int]], back: int, ahead: int) -> list[tuple[int, int]]:
    """Merged ranges from `back` characters before to `ahead` after each hit, widened to
    whitespace so that no word is cut."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(hits):
        a, b = max(0, start - back), min(len(text), end + ahead)
        while a > 0 and not text[a - 1].isspace():
            a -= 1
        while b < len(text) and not text[b].isspace():
            b += 1
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out


@dataclass(frozen=True)
class Cue:
    """A pattern with a `name` or `code` group, tried only near its `triggers` (lowercase
    words or phrases, as whole words). The pattern may start `back` characters before a
    trigger and end `ahead` after it. `weak`: the name must then be in the gazetteer or have two words."""

    pattern: re.Pattern[str]
    triggers: tuple[str, ...]
    weak: bool = False
    back: int = 12
    ahead: int = 80
    gate: frozenset[str] = field(init=False)  # the triggers' first words: a cheap first test

    def __post_init__(self) -> None:
        object.__setattr__(self, "gate", frozenset(_first_word(t) for t in self.triggers))

    def finditer(self, t: ScanText) -> Iterable[re.Match[str]]:
        if t.words.isdisjoint(self.gate):
            return
        hits: list[tuple[int, int]] = []
        for trigger in self.triggers:
            i = t.lowered.find(trigger)
            while i != -1:
                j = i + len(trigger)
                if (i == 0 or not t.lowered[i - 1].isalnum()) and (j == len(t.lowered) or not t.lowered[j].isalnum()):
                    hits.append((i, j))
                i = t.lowered.find(trigger, i + 1)
        if hits:
            yield from t.scan(self.pattern, merged_windows(t.text, hits, self.back, self.ahead))


def _first_word(trigger: str) -> str:
    m = LOWER_WORDS_RE.match(trigger)
    if m is None:
        raise ValueError(f"a cue's trigger starts with a lowercase word, not {trigger!r}")
    return m.group(0)
