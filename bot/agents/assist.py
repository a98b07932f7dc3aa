"""What the assist panel shows beside a conversation: replies suggested for the latest
customer message, similar past conversations, and a search over the knowledge base and
transcripts.

Suggestions come from the assistant's own parts, so an agent sees what the bot would say
and what it would have drawn on: the live composer's reply (the promoted GPT-2 model's,
or the retrieval composer's) first, then the best retrieved replies. Unlike a bot reply,
a suggestion may keep a `{{Placeholder}}` the conversation has not filled: the agent
knows or can look up the value, and must fill it before sending (the send route refuses
text with a placeholder left in it).

These functions run on an inference worker's thread with that worker's `Assistant`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from bot.agents.suggestions import SuggestionDraft
from bot.composers.retrieval import fill_placeholders, kb_answer
from bot.contracts import ComposeRequest, Role, Slots
from bot.dialogue import retrieve_for_intent
from retrieval.entities import mask_entities

if TYPE_CHECKING:
    from bot.workspace import Assistant
    from retrieval.types import Hit, Unit

MAX_SUGGESTIONS = 3
MAX_SIMILAR = 5
# retrieved units looked at for suggestions and similar conversations
_CANDIDATE_HITS = 12


@dataclass(frozen=True)
class AssistResult:
    """Suggestions for one customer message, the similar past conversations, and how to
    show every unit either of them names (id -> `unit_view`)."""

    suggestions: list[SuggestionDraft]
    similar: list[dict[str, Any]]
    units: dict[str, dict[str, Any]]


def unit_view(unit: Unit, score: float | None = None) -> dict[str, Any]:
    """A retrieved unit as the panel shows it: where it came from (a past conversation or
    a knowledge-base article) and its text."""
    view: dict[str, Any] = {
        "id": unit.id,
        "kind": "kb" if unit.kind == "kb" else "transcript" if unit.kind == "transcript" else unit.kind,
        "title": unit.title or (unit.intent or "").replace("_", " ") or unit.source_id,
        "text": unit.evidence_text,
        "source_id": unit.source_id,
    }
    if unit.kind == "transcript":
        view["conversation_id"] = unit.source_id
        view["customer_text"] = unit.text
    if score is not None:
        view["score"] = round(float(score), 4)
    return view


def suggest_replies(assistant: Assistant, conversation_id: str, message_id: int) -> AssistResult:
    """Up to `MAX_SUGGESTIONS` replies for the customer message `message_id` of the
    conversation (the live composer's first, then retrieved ones; the same text never
    twice) and the past conversations most like it."""
    messages = assistant.store.messages(conversation_id)
    position = next(i for i, m in enumerate(messages) if m["id"] == message_id)
    text = messages[position]["text"]
    slots = dict(assistant.store.load_state(conversation_id).slots)

    masked = mask_entities(text)[0]
    vector = assistant.embedder.encode([masked])
    prediction = assistant.classifier.predict(vector, [masked])[0]
    intent = None if prediction.out_of_scope else prediction.intent
    config = assistant.config.dialogue
    hits = retrieve_for_intent(
        assistant.index,
        vector,
        intent,
        max(config.retrieval_k, _CANDIDATE_HITS, assistant.manager.composer.hits_wanted),
    )

    drafts: list[SuggestionDraft] = []
    seen: set[str] = set()

    def add(draft: SuggestionDraft) -> None:
        key = " ".join(draft.text.lower().split())
        if key and key not in seen and len(drafts) < MAX_SUGGESTIONS:
            seen.add(key)
            drafts.append(draft)

    history = tuple(
        (cast(Role, m["role"]), m["text"]) for m in messages[max(0, position - config.history_turns) : position]
    )
    if intent is not None:
        composed = assistant.manager.composer.compose(
            ComposeRequest(text=text, intent=intent, history=history, hits=tuple(hits), slots=Slots(slots))
        )
        if composed.action in ("answer", "clarify"):
            scores = {h.unit.id: h.score for h in hits}
            sources = tuple((i, round(float(scores.get(i, 0.0)), 4)) for i in composed.source_ids)
            generated = not composed.composer.startswith("retrieval")
            add(
                SuggestionDraft(
                    kind="generated" if generated else "retrieved",
                    composer=composed.composer,
                    text=composed.text,
                    sources=sources,
                    score=max((s for _, s in sources), default=0.0),
                )
            )
    for hit in hits:
        reply = _retrieved_reply(hit.unit, slots)
        if reply:
            score = round(float(hit.score), 4)
            add(SuggestionDraft("retrieved", "retrieval", reply, ((hit.unit.id, score),), score))

    similar = similar_conversations(hits)
    units = {h.unit.id: unit_view(h.unit, h.score) for h in hits}
    return AssistResult(drafts, similar, units)


def _retrieved_reply(unit: Unit, slots: dict[str, str]) -> str:
    """A retrieved unit's reply as a suggestion: its placeholders filled where the
    conversation knows the value; empty when the unit is no reply to suggest."""
    if unit.kind == "kb":
        return kb_answer(unit.title, unit.text)
    if not unit.reply or unit.extra.get("after_lookup"):
        # an agent reading one customer's order record: not a reply for another customer
        return ""
    return fill_placeholders(unit.reply, slots)[0]


def similar_conversations(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """The past conversations the hits come from, best first, one entry each."""
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for hit in hits:
        unit = hit.unit
        if unit.kind != "transcript" or unit.source_id in seen:
            continue
        seen.add(unit.source_id)
        found.append(unit_view(unit, hit.score))
        if len(found) == MAX_SIMILAR:
            break
    return found


def search_knowledge(assistant: Assistant, query: str, k: int, kind: str | None = None) -> list[dict[str, Any]]:
    """The knowledge-base chunks and transcript turns closest to `query` (personal values
    masked before encoding, as the index was built)."""
    vector = assistant.embedder.encode([mask_entities(query)[0]])
    if kind is not None:
        return [unit_view(h.unit, h.score) for h in assistant.index.search(vector, k=k, kind=kind)]
    # both kinds, so that past conversations (there are many more of them) never crowd
    # the articles out: up to half the hits are articles, the rest whatever is closest
    articles = assistant.index.search(vector, k=(k + 1) // 2, kind="kb")
    others = [h for h in assistant.index.search(vector, k=k) if h.unit.kind != "kb"]
    hits = sorted([*articles, *others[: k - len(articles)]], key=lambda h: -h.score)
    return [unit_view(h.unit, h.score) for h in hits]


def describe_units(assistant: Assistant, unit_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`unit_view` of each id the index still has."""
    views: dict[str, dict[str, Any]] = {}
    for unit_id in unit_ids:
        unit = assistant.index.get(unit_id)
        if unit is not None:
            views[unit_id] = unit_view(unit)
    return views
