"""The data that crosses the retrieval boundary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

UnitKind = Literal["transcript", "kb", "qa"]


@dataclass(frozen=True)
class Unit:
    """One retrievable item.

    - `transcript`: a customer turn (`text`, what gets embedded) with its recent
      `context` (earlier turns, oldest first, "role: text" lines) and the agent's
      `reply` to it, from conversation `source_id` at `turn`.
    - `kb`: one chunk of a knowledge-base article; `text` is the chunk, `reply` is empty,
      `title` the article title.
    - `qa`: a question/answer pair from an imported CSV (Bitext or generic).

    Agent replies are stored with personal values masked as typed placeholders
    (`{{Order Number}}`, `{{Email}}`) so that one customer's data is never replayed to
    another; the composer fills placeholders from the current conversation's slots.
    """

    id: str
    kind: UnitKind
    text: str
    reply: str = ""
    source_id: str = ""
    turn: int | None = None
    intent: str | None = None
    outcome: str | None = None
    title: str | None = None
    context: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["context"] = list(self.context)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Unit:
        d = dict(d)
        d["context"] = tuple(d.get("context") or ())
        d["extra"] = dict(d.get("extra") or {})
        return cls(**d)

    @property
    def evidence_text(self) -> str:
        """What a composer shows as evidence: the reply for transcripts/QA, the chunk for KB."""
        return self.reply or self.text


@dataclass(frozen=True)
class Hit:
    """A search result: a unit, its cosine similarity to the query (higher is closer)."""

    unit: Unit
    score: float
    # ids of near-duplicate units folded into this hit (same reply, other wording)
    duplicates: tuple[str, ...] = ()
