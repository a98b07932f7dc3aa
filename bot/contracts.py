"""The contracts every part of csbot is written against.

A turn is channel-agnostic: a channel (CLI, HTTP widget, Slack, ...) turns its input into
`DialogueManager.handle(text, conversation_id)` and renders the `TurnResult`. State lives
in the store, never in a component's memory, so any replica can take the next turn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Generator

    import numpy as np

    from retrieval.types import Hit

# "agent": a human agent holds the conversation, so the bot stayed silent (empty reply)
Action = Literal["answer", "smalltalk", "clarify", "fallback", "handoff", "agent"]
Role = Literal["customer", "bot", "agent", "system"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors (rows), so inner product = cosine."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray: ...


@runtime_checkable
class Retriever(Protocol):
    """Finds the units closest to a query vector (the same vector the classifier sees).

    With `intent` and/or `kind` ("transcript", "kb", "qa"), only matching units are
    candidates.
    """

    def search(
        self, query: np.ndarray, k: int = 5, *, intent: str | None = None, kind: str | None = None
    ) -> list[Hit]: ...


@dataclass(frozen=True)
class IntentPrediction:
    """What the classifier says about one customer turn.

    `confidence` is a calibrated probability of `intent`. `out_of_scope` is decided by
    thresholds calibrated on held-out intents; when it is True, `intent` is still the
    closest known intent, for debugging, but must not be acted on.
    """

    intent: str
    confidence: float
    out_of_scope: bool
    # the best few (intent, probability), highest first, for clarifying questions
    ranking: tuple[tuple[str, float], ...] = ()
    # cosine similarity to the nearest training example (the OOS signal)
    nearest_similarity: float = 0.0


@runtime_checkable
class IntentClassifier(Protocol):
    """Predicts the intent of query vectors produced by the shared `Embedder`."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    def predict(self, vectors: np.ndarray, texts: list[str]) -> list[IntentPrediction]: ...


@dataclass(frozen=True)
class Slots:
    """Values the customer has given in this conversation (latest wins)."""

    values: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.values.get(name)


@dataclass(frozen=True)
class ComposeRequest:
    """Everything a composer may use: the turn, the recent history, the evidence, slots."""

    text: str
    intent: str
    history: tuple[tuple[Role, str], ...]
    hits: tuple[Hit, ...]
    slots: Slots


@dataclass(frozen=True)
class ComposedReply:
    """A composer's answer.

    `action` is "answer" when the reply is grounded in `source_ids`; "clarify" when the
    composer needs a slot it does not have (`missing_slot` names it); "fallback" when
    nothing retrieved was good enough. `composer` names who wrote it ("retrieval",
    "gpt2", ...); `note` explains a fallback (logged, shown with --debug).
    """

    text: str
    action: Action
    composer: str
    source_ids: tuple[str, ...] = ()
    missing_slot: str | None = None
    note: str | None = None


@runtime_checkable
class Composer(Protocol):
    """Writes the reply for a task turn from the retrieved evidence.

    `hits_wanted`: how many retrieved hits the composer reads; the dialogue manager
    retrieves at least that many (and at least `DialogueConfig.retrieval_k`, which also
    caps the sources it shows). 0: whatever the dialogue retrieves."""

    @property
    def name(self) -> str: ...

    @property
    def hits_wanted(self) -> int: ...

    def compose(self, request: ComposeRequest) -> ComposedReply: ...


@runtime_checkable
class StreamingComposer(Composer, Protocol):
    """A composer that can release its reply while writing it.

    `compose_stream` yields text chunks and returns the `ComposedReply`; the chunks joined
    are exactly the reply's text, or nothing was yielded (the reply then comes whole).
    Nothing yielded may be taken back: a streamed reply is final as far as it went."""

    def compose_stream(self, request: ComposeRequest) -> Generator[str, None, ComposedReply]: ...


def compose_streaming(composer: Composer, request: ComposeRequest) -> Generator[str, None, ComposedReply]:
    """`composer.compose_stream(request)` for a `StreamingComposer`; for any other composer its
    `compose` reply, yielding nothing."""
    if isinstance(composer, StreamingComposer):
        return (yield from composer.compose_stream(request))
    return composer.compose(request)


@dataclass(frozen=True)
class Source:
    id: str
    score: float
    text: str


@dataclass(frozen=True)
class TurnResult:
    """The bot's answer to one customer turn, as every channel receives it."""

    conversation_id: str
    message_id: int
    reply: str
    intent: str | None
    confidence: float
    out_of_scope: bool
    action: Action
    sources: tuple[Source, ...]
    composer: str
    latency_ms: float
    # quick replies a channel may render as buttons (clarifying questions)
    buttons: tuple[str, ...] = ()
    slots: dict[str, str] = field(default_factory=dict)
    note: str | None = None


def turn_to_dict(result: TurnResult) -> dict[str, Any]:
    """A turn as one JSON-ready object: what `csbot ask` prints and the HTTP API returns
    (one definition, so the two channels cannot drift apart)."""
    d = asdict(result)
    d["sources"] = [asdict(s) for s in result.sources]
    d["buttons"] = list(result.buttons)
    return d
