"""Fakes for the expensive contracts of bot.contracts (the models), for fast tests.

Each fake is deterministic and records what it was asked, so a test can say both what the
dialogue decided and what it asked of the models. Nothing here fakes the conversation
store: tests use a real SQLite file for it.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from bot.contracts import ComposedReply, ComposeRequest, IntentPrediction
from retrieval.types import Hit, Unit, UnitKind


class HashingEmbedder:
    """An `Embedder`: a hashed bag of words, L2-normalised (texts sharing words are close)."""

    def __init__(self, dim: int = 64):
        self._dim = dim
        self.encoded: list[str] = []  # every text encoded, in order

    @property
    def model_id(self) -> str:
        return f"hashing-bag-of-words-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded.extend(texts)
        vectors = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                # crc32, not hash(): the same text gives the same vector in every process
                vectors[row, zlib.crc32(word.encode()) % self._dim] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)


@dataclass(frozen=True)
class Search:
    """One call a `FixedRetriever` answered."""

    k: int
    intent: str | None
    kind: str | None


class FixedRetriever:
    """A `Retriever` that answers every query with the given hits, best first, filtered by
    `intent` and `kind` the way the real index filters its candidates."""

    def __init__(self, hits: Iterable[Hit] = ()):
        self.hits = sorted(hits, key=lambda h: -h.score)
        self.searches: list[Search] = []

    def search(self, query: np.ndarray, k: int = 5, *, intent: str | None = None, kind: str | None = None) -> list[Hit]:
        self.searches.append(Search(k, intent, kind))
        matching = [
            h
            for h in self.hits
            if (intent is None or h.unit.intent == intent) and (kind is None or h.unit.kind == kind)
        ]
        return matching[:k]


def hit(
    unit_id: str, score: float, *, intent: str, reply: str = "", kind: UnitKind = "transcript", text: str = ""
) -> Hit:
    """A search result for a unit of `intent` (a transcript turn unless `kind` says otherwise)."""
    return Hit(Unit(id=unit_id, kind=kind, text=text or unit_id, reply=reply, intent=intent), score)


def prediction(
    intent: str,
    confidence: float = 0.9,
    *,
    out_of_scope: bool = False,
    ranking: tuple[tuple[str, float], ...] = (),
    nearest_similarity: float = 0.8,
) -> IntentPrediction:
    """What a classifier says about one turn; the ranking defaults to `intent` alone."""
    return IntentPrediction(
        intent=intent,
        confidence=confidence,
        out_of_scope=out_of_scope,
        ranking=ranking or ((intent, confidence),),
        nearest_similarity=nearest_similarity,
    )


class ScriptedClassifier:
    """An `IntentClassifier` that says, for each text, the prediction it was given.

    Texts are matched as the dialogue passes them: with personal values masked ("it is
    {{Order Number}}"). A text without a prediction is a mistake in the test, and says so.
    """

    def __init__(self, predictions: Mapping[str, IntentPrediction]):
        self.predictions = dict(predictions)
        self.asked: list[str] = []  # every text classified, in order

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({p.intent for p in self.predictions.values()}))

    def predict(self, vectors: np.ndarray, texts: list[str]) -> list[IntentPrediction]:
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} vectors for {len(texts)} texts")
        self.asked.extend(texts)
        missing = [t for t in texts if t not in self.predictions]
        if missing:
            raise KeyError(f"no scripted prediction for {missing!r}; scripted: {sorted(self.predictions)!r}")
        return [self.predictions[t] for t in texts]


@dataclass
class FakeComposer:
    """A `Composer` that answers from the first hit (or with `reply`, when given).

    Its default reply is grounded in the best hit of the request's intent: "<name> answer
    for <intent>: <that hit's evidence>", with that hit as its one source. `load()` returns
    the composer itself, as a loaded generator does.
    """

    name: str = "fake"
    hits_wanted: int = 0
    reply: ComposedReply | None = None
    requests: list[ComposeRequest] = field(default_factory=list)

    def load(self) -> FakeComposer:
        return self

    def compose(self, request: ComposeRequest) -> ComposedReply:
        self.requests.append(request)
        if self.reply is not None:
            return self.reply
        best = next((h for h in request.hits if h.unit.intent == request.intent), None)
        if best is None:
            return ComposedReply(
                "I could not find anything on that.", "fallback", self.name, note="no hit of the intent"
            )
        return ComposedReply(
            f"{self.name} answer for {request.intent}: {best.unit.evidence_text}",
            "answer",
            self.name,
            source_ids=(best.unit.id,),
        )
