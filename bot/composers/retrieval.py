"""The retrieval composer: answers with the best retrieved agent reply, adapted to the
conversation's slots. It never writes new facts: every sentence it sends was written by a
human agent (or a knowledge-base author) and only placeholders are filled.

The GPT-2 composer plugs in behind the same `Composer` contract and falls back to this one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.contracts import ComposedReply, ComposeRequest
from bot.domain import Domain
from bot.settings import DialogueConfig
from retrieval.entities import PLACEHOLDER_RE, SLOT_BY_PLACEHOLDER

if TYPE_CHECKING:
    from retrieval.types import Hit


def prefer_intent(hits: Sequence[Hit], intent: str | None, min_score: float) -> list[Hit]:
    """Hits at or above `min_score`, those labelled `intent` first (each group by score).

    The classifier sees the whole intent inventory, so when it is confident its label is a
    better filter than nearest-neighbour voting among near-paraphrases of other intents.
    """
    good = [h for h in hits if h.score >= min_score]
    same = [h for h in good if intent is not None and h.unit.intent == intent]
    other = [h for h in good if not (intent is not None and h.unit.intent == intent)]
    return same + other


class RetrievalComposer:
    """Reply with the best usable retrieved reply (`composer: "retrieval"`)."""

    name = "retrieval"
    hits_wanted = 0  # the best usable hit: the dialogue's retrieval_k is plenty

    def __init__(
        self,
        min_score: float,
        slot_questions: dict[str, str],
        unsure_message: str,
        slot_mentions: dict[str, list[str]] | None = None,
        article_min_score: float | None = None,
    ):
        self.min_score = min_score
        # when every transcript reply is unusable, an article of the classified intent is
        # still policy, so it may answer at a lower similarity
        self.article_min_score = min_score if article_min_score is None else article_min_score
        self.slot_questions = slot_questions
        self.unsure_message = unsure_message
        self.slot_mentions = slot_mentions or {}

    @classmethod
    def from_config(cls, config: DialogueConfig, domain: Domain) -> RetrievalComposer:
        return cls(
            config.answer_min_score,
            domain.slot_questions,
            domain.unsure_message,
            slot_mentions=domain.slot_mentions,
            article_min_score=config.article_min_score,
        )

    def check_reply(self, reply: str, request: ComposeRequest) -> SlotCheck:
        """What the conversation's slots make of a candidate reply (see `check_slots`)."""
        return check_slots(reply, request.slots.values, self.slot_questions, self.slot_mentions)

    def compose(self, request: ComposeRequest) -> ComposedReply:
        candidates = prefer_intent(request.hits, request.intent, self.min_score)
        if not candidates and not any(
            h.unit.kind == "kb" and h.unit.intent == request.intent and h.score >= self.article_min_score
            for h in request.hits
        ):
            best = max((h.score for h in request.hits), default=0.0)
            return ComposedReply(
                text=self.unsure_message,
                action="fallback",
                composer=self.name,
                note=f"no retrieved reply reached score {self.min_score:.2f} (best {best:.2f})",
            )
        skipped: list[str] = []
        for hit in candidates:
            unit = hit.unit
            if unit.kind == "kb":
                text = kb_answer(unit.title, unit.text)
                return ComposedReply(text, "answer", self.name, source_ids=(unit.id,))
            if unit.extra.get("after_lookup"):
                # the agent was reading one customer's order record: not policy, not ours to repeat
                skipped.append(f"{unit.id} relies on an order lookup")
                continue
            check = self.check_reply(unit.reply, request)
            if check.reject:
                skipped.append(f"{unit.id} {check.reject}")
                continue
            if check.ask:
                return ComposedReply(
                    self.slot_questions[check.ask],
                    "clarify",
                    self.name,
                    source_ids=(unit.id,),
                    missing_slot=check.ask,
                    note=f"{unit.id} needs slot {check.ask}",
                )
            if check.asks_itself:
                # the agent's reply is itself a question for a slot: remember what we asked
                return ComposedReply(
                    check.text, "clarify", self.name, source_ids=(unit.id,), missing_slot=check.asks_itself
                )
            return ComposedReply(check.text, "answer", self.name, source_ids=(unit.id,))
        article = next(
            (
                h
                for h in request.hits
                if h.unit.kind == "kb" and h.unit.intent == request.intent and h.score >= self.article_min_score
            ),
            None,
        )
        if article is not None:
            return ComposedReply(
                kb_answer(article.unit.title, article.unit.text),
                "answer",
                self.name,
                source_ids=(article.unit.id,),
                note="no transcript reply fitted (" + "; ".join(skipped) + "); answered from the article",
            )
        return ComposedReply(
            text=self.unsure_message,
            action="fallback",
            composer=self.name,
            note="every candidate needed a value the bot does not know: " + "; ".join(skipped),
        )


@dataclass(frozen=True)
class SlotCheck:
    """What a candidate reply needs before it can be sent (see `check_slots`)."""

    text: str  # the reply with the placeholders we could fill filled
    reject: str | None = None  # why it cannot be sent at all
    ask: str | None = None  # a slot to ask for first (its placeholder is still open)
    asks_itself: str | None = None  # the reply is itself a question for this missing slot


def asked_slots(reply: str, slot_mentions: dict[str, list[str]]) -> list[str]:
    """Slots a reply asks for ("Could you send the order number?")."""
    if "?" not in reply:
        return []
    lowered = reply.lower()
    return [slot for slot, phrases in slot_mentions.items() if any(p in lowered for p in phrases)]


def check_slots(
    reply: str, slots: dict[str, str], slot_questions: dict[str, str], slot_mentions: dict[str, list[str]]
) -> SlotCheck:
    """Fill a reply's placeholders from the conversation's slots and say whether it can go
    out: never with a placeholder printed blank, never asking again for what was given.
    Shared by every composer, so retrieved and generated replies obey the same rules."""
    asked = asked_slots(reply, slot_mentions)
    known = next((s for s in asked if s in slots), None)
    if known:
        return SlotCheck(reply, reject=f"asks for {known}, which the customer already gave")
    filled, missing, unknown = fill_placeholders(reply, slots)
    if unknown:
        # a value we cannot know (a date, a tracking number)
        return SlotCheck(filled, reject=f"needs {', '.join(unknown)}, which no slot fills")
    unaskable = [m for m in missing if m not in slot_questions]
    if unaskable:
        return SlotCheck(filled, reject=f"needs {', '.join(unaskable)}, which the bot cannot ask for")
    if missing:
        return SlotCheck(filled, ask=missing[0])
    return SlotCheck(filled, asks_itself=next((s for s in asked if s not in slots), None))


def fill_placeholders(text: str, slots: dict[str, str]) -> tuple[str, list[str], list[str]]:
    """Fill `{{Placeholders}}` from slots.

    Returns (filled text, slots that are missing but can be asked for, placeholders that
    map to no slot at all).
    """
    missing: list[str] = []
    unknown: list[str] = []

    def sub(m: re.Match[str]) -> str:
        slot = SLOT_BY_PLACEHOLDER.get(m.group(0))
        if slot is None:
            unknown.append(m.group(0))
            return m.group(0)
        if slot in slots:
            return slots[slot]
        if slot not in missing:
            missing.append(slot)
        return m.group(0)

    filled = PLACEHOLDER_RE.sub(sub, text)
    return filled, missing, unknown


def kb_answer(title: str | None, chunk: str, max_sentences: int = 3, max_items: int = 8) -> str:
    """The opening of an article chunk: its first sentences, with any list they introduce."""
    body = chunk
    if title and body.startswith(title):
        body = body[len(title) :].lstrip(" :\n")
    out: list[str] = []
    sentences = items = 0
    for line in filter(None, (ln.strip() for ln in body.splitlines())):
        if line.startswith("-"):
            if items == max_items:
                break
            out.append("\n" + line)
            items += 1
            continue
        for i, sentence in enumerate(re.split(r"(?<=[.!?])\s+", line)):
            if sentences == max_sentences:
                break
            out.append(("\n" if i == 0 and out else " ") + sentence)
            sentences += 1
        if sentences == max_sentences:
            break
    return f"Here is what our help centre says{f' ({title})' if title else ''}:\n" + "".join(out).strip()
