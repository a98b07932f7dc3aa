"""The dialogue manager: one customer turn in, one `TurnResult` out, everything logged.

Per turn: validate, load the conversation's state from the store, pull slots out of the
text, encode the (masked) text once, classify it and retrieve with that same vector, then
apply the policy:

- a conversation a human agent holds gets no reply (the message is stored for the agent);
- a conversation waiting for a human gets the waiting notice;
- "talk to a human" hands over;
- small talk (greeting, thanks, goodbye) is answered directly;
- out of scope, or a reply the composer cannot ground, is a fallback, and repeated
  failure hands over;
- low confidence asks which of the two likeliest intents was meant (buttons);
- a task intent with a required slot missing asks for it, and the next turn that brings
  the slot continues that task;
- a task intent routed to a business action (`bot/actions`, `actions.json`) runs it once
  its slots are known: the slots it sets update the state, its messages are the reply, and
  an action that fails gets an honest fallback;
- otherwise retrieve and compose.

Every decision is written with the turn (intent, confidence, action, sources, composer,
latency) in one transaction, with the new state, so any process can take the next turn.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from bot.actions.contract import ActionFailedError, BusinessActions
from bot.actions.routes import ActionRoute
from bot.contracts import (
    Action,
    ComposedReply,
    Composer,
    ComposeRequest,
    Embedder,
    IntentClassifier,
    IntentPrediction,
    Retriever,
    Role,
    Slots,
    Source,
    TurnResult,
    compose_streaming,
)
from bot.domain import Domain
from bot.errors import InvalidMessageError, MessageTooLongError
from bot.settings import DialogueConfig
from bot.store import ConversationStore, DialogueState, MessageRecord
from retrieval.entities import PLACEHOLDER_RE, find_entities, mask_entities, masked_card, redact_card_numbers
from retrieval.text import without_control_characters

if TYPE_CHECKING:
    import numpy as np

    from retrieval.types import Hit

# a turn that, once its slot values are removed, has at most this many words is read as
# "here is what you asked for" rather than as a new request
_SLOT_ONLY_MAX_WORDS = 6


def validate_message(text: str, max_chars: int) -> str:
    """The message to handle, or a typed error. Control characters (other than newlines
    and tabs) are dropped; nothing else is changed."""
    if not isinstance(text, str):
        raise InvalidMessageError(f"message must be text, got {type(text).__name__}")
    cleaned = without_control_characters(text)
    if not cleaned.strip():
        raise InvalidMessageError("message is empty; type a question or request")
    if len(cleaned) > max_chars:
        raise MessageTooLongError(len(cleaned), max_chars)
    return cleaned.strip()


@dataclass
class _Decision:
    reply: str
    action: Action
    intent: str | None
    composer: str
    sources: tuple[Source, ...] = ()
    buttons: tuple[str, ...] = ()
    note: str | None = None
    handoff_reason: str | None = None


class DialogueManager:
    """Composes the parts into turns. Holds no conversation state of its own."""

    def __init__(
        self,
        *,
        embedder: Embedder,
        classifier: IntentClassifier,
        retriever: Retriever,
        composer: Composer,
        store: ConversationStore,
        domain: Domain,
        config: DialogueConfig,
        actions: BusinessActions | None = None,
    ):
        self.embedder = embedder
        self.classifier = classifier
        self.retriever = retriever
        self.composer = composer
        self.store = store
        self.domain = domain
        self.config = config
        self.actions = actions

    def start_conversation(self, channel: str = "cli") -> str:
        return self.store.create_conversation(channel=channel)

    def handle(
        self, text: str, conversation_id: str | None = None, channel: str = "cli", client_message_id: str | None = None
    ) -> TurnResult:
        """One turn. `client_message_id` is the channel's id for the customer message
        (stored with it; a conversation refuses the same id twice, see
        `ConversationStore.record_turn`)."""
        turn = self._turn(text, conversation_id, channel, client_message_id, stream=False)
        while True:
            try:
                next(turn)  # a whole reply is composed: nothing is released on the way
            except StopIteration as done:
                return cast(TurnResult, done.value)

    def handle_stream(
        self, text: str, conversation_id: str | None = None, channel: str = "cli", client_message_id: str | None = None
    ) -> Iterator[str | TurnResult]:
        """The same turn as `handle`, as text pieces followed by the `TurnResult`; the pieces
        joined are exactly its reply.

        Validation errors raise at the first `next()`, before anything is stored. A composer
        that streams (`StreamingComposer`: the GPT-2 composer) releases its reply sentence by
        sentence while it decodes, each sentence only once the reply up to it passes the
        grounding guard, so a customer never sees words that are then taken back; the turn
        is stored once the reply is whole, before the `TurnResult`. Every other reply (and
        every reply with `DialogueConfig.stream_while_composing` off) is composed whole, then
        cut into pieces."""
        streamed = False
        stream = self.config.stream_while_composing
        turn = self._turn(text, conversation_id, channel, client_message_id, stream=stream)
        while True:
            try:
                chunk = next(turn)
            except StopIteration as done:
                result = cast(TurnResult, done.value)
                break
            streamed = True
            yield from reply_pieces(chunk)
        if not streamed:
            yield from reply_pieces(result.reply)
        yield result

    def _turn(
        self, text: str, conversation_id: str | None, channel: str, client_message_id: str | None, *, stream: bool
    ) -> Generator[str, None, TurnResult]:
        """The turn, yielding the reply's chunks as a streaming composer releases them (when
        `stream`); returns the stored `TurnResult`."""
        started = time.perf_counter()
        text = validate_message(text, self.config.max_message_chars)
        if conversation_id is None:
            conversation_id = self.store.create_conversation(channel=channel)
        state = self.store.load_state(conversation_id)  # UnknownConversationError if absent

        new_slots = find_entities(text)
        # A card number is never stored or echoed whole: the slot (and so any reply filled
        # from it) and the stored message keep only its last four digits.
        if "card_number" in new_slots:
            new_slots["card_number"] = masked_card(new_slots["card_number"])
        state.slots.update(new_slots)
        if "card_number" in state.slots:  # a state written before cards were masked
            state.slots["card_number"] = masked_card(state.slots["card_number"])

        # One encode per turn: the classifier and the retriever share this vector. Personal
        # values are masked first, as they were in the indexed transcripts.
        masked = mask_entities(text)[0]
        text = redact_card_numbers(text)  # what is stored, composed from and shown from now on
        vector = self.embedder.encode([masked])
        prediction = self.classifier.predict(vector, [masked])[0]
        handling = self.store.handling(conversation_id)
        if handling == "open":
            return self._silent_turn(conversation_id, text, prediction, client_message_id, started)
        decision = yield from self._decide(
            conversation_id, text, masked, vector, prediction, new_slots, state, handling, stream=stream
        )

        latency_ms = (time.perf_counter() - started) * 1000
        confidence = round(float(prediction.confidence), 4)
        customer = MessageRecord(
            role="customer",
            text=text,
            intent=decision.intent,
            confidence=confidence,
            out_of_scope=prediction.out_of_scope,
            client_message_id=client_message_id,
        )
        bot = MessageRecord(
            role="bot",
            text=decision.reply,
            intent=decision.intent,
            confidence=confidence,
            out_of_scope=prediction.out_of_scope,
            action=decision.action,
            sources=tuple((s.id, s.score) for s in decision.sources),
            composer=decision.composer,
            note=decision.note,
            latency_ms=round(latency_ms, 2),
            buttons=decision.buttons,
        )
        message_id = self.store.record_turn(
            conversation_id, customer, bot, state, handoff_reason=decision.handoff_reason
        )
        return TurnResult(
            conversation_id=conversation_id,
            message_id=message_id,
            reply=decision.reply,
            intent=decision.intent,
            confidence=confidence,
            out_of_scope=prediction.out_of_scope,
            action=decision.action,
            sources=decision.sources,
            composer=decision.composer,
            latency_ms=round(latency_ms, 2),
            buttons=decision.buttons,
            slots=dict(state.slots),
            note=decision.note,
        )

    def _silent_turn(
        self,
        conversation_id: str,
        text: str,
        prediction: IntentPrediction,
        client_message_id: str | None,
        started: float,
    ) -> TurnResult:
        """A human agent holds the conversation: the customer's message is stored (with its
        intent, for the agent's view) and the bot says nothing."""
        confidence = round(float(prediction.confidence), 4)
        message_id = self.store.record_customer_message(
            conversation_id,
            MessageRecord(
                role="customer",
                text=text,
                intent=prediction.intent,
                confidence=confidence,
                out_of_scope=prediction.out_of_scope,
                client_message_id=client_message_id,
            ),
        )
        return silent_turn(
            conversation_id,
            message_id,
            intent=prediction.intent,
            confidence=confidence,
            out_of_scope=prediction.out_of_scope,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )

    # -- policy --------------------------------------------------------------------
    def _decide(
        self,
        conversation_id: str,
        text: str,
        masked: str,
        vector: np.ndarray,
        p: IntentPrediction,
        new_slots: dict[str, str],
        state: DialogueState,
        handling: str,
        *,
        stream: bool = False,
    ) -> Generator[str, None, _Decision]:
        """The policy's decision for the turn; only the composer's step yields (its chunks,
        when `stream`), every other branch returns at once."""
        domain, cfg = self.domain, self.config
        # who handles the conversation is decided by the agents' side (the store's
        # `handling`), never by this state's copy of it: an agent may have handed the
        # conversation back while this turn was running
        state.handed_off = handling == "pending"
        if handling == "pending":
            return _Decision(
                domain.waiting_for_agent_message,
                "handoff",
                p.intent,
                "policy",
                note="conversation is waiting for a human agent",
            )

        intent, confident = p.intent, (not p.out_of_scope and p.confidence >= cfg.clarify_below)
        out_of_scope = p.out_of_scope
        chosen = _match_option(text, state.clarify_options, domain)
        if chosen is not None:
            intent, confident, out_of_scope = chosen, True, False
        elif state.active_intent and self._continues_task(masked, new_slots, state, p, confident):
            intent, confident, out_of_scope = state.active_intent, True, False
        state.clarify_options = []

        if confident and intent in domain.handoff_intents:
            return self._handoff(state, intent, "customer asked for a human")
        if confident and intent in domain.smalltalk:
            replies = domain.smalltalk[intent]
            state.failures = 0
            # vary the wording without randomness, so a replayed conversation replays alike
            return _Decision(replies[zlib.crc32(text.encode()) % len(replies)], "smalltalk", intent, "policy")
        if out_of_scope:
            return self._failure(
                state,
                domain.fallback_message,
                "fallback",
                None,
                note=f"out of scope (closest intent {p.intent}, similarity {p.nearest_similarity:.2f})",
            )
        if not confident:
            options = [i for i, _ in p.ranking[:2]]
            state.clarify_options = options
            names = " or ".join(domain.intent_name(i) for i in options)
            return self._failure(
                state,
                domain.clarify_message.format(options=names),
                "clarify",
                p.intent,
                buttons=tuple(domain.intent_name(i) for i in options),
                note=f"confidence {p.confidence:.2f} < {cfg.clarify_below:.2f}",
            )

        # a task intent
        if intent != state.active_intent:
            state.active_intent = intent
        route = self.actions.routes.for_intent(intent) if self.actions is not None else None
        if route is not None and not route.applies(state.slots):
            route = None
        for slot in [*domain.required_slots.get(intent, []), *(route.required_slots if route else ())]:
            if slot not in state.slots:
                state.awaiting_slot = slot
                return _Decision(
                    domain.slot_questions[slot], "clarify", intent, "policy", note=f"{intent} needs {slot}"
                )
        state.awaiting_slot = None
        if route is not None:
            return self._run_action(conversation_id, text, p, intent, route, state)

        hits = retrieve_for_intent(self.retriever, vector, intent, max(cfg.retrieval_k, self.composer.hits_wanted))
        history = self._history(conversation_id)
        request = ComposeRequest(
            text=text, intent=intent, history=history, hits=tuple(hits), slots=Slots(dict(state.slots))
        )
        composed = (yield from compose_streaming(self.composer, request)) if stream else self.composer.compose(request)
        sources = _sources(hits, composed, cfg.retrieval_k)
        if composed.action == "fallback":
            return self._failure(
                state,
                composed.text,
                "fallback",
                intent,
                sources=sources,
                note=composed.note,
                composer=composed.composer,
            )
        if composed.action == "clarify":
            state.awaiting_slot = composed.missing_slot
        else:
            state.failures = 0
        return _Decision(composed.text, composed.action, intent, composed.composer, sources=sources, note=composed.note)

    def _run_action(
        self,
        conversation_id: str,
        text: str,
        p: IntentPrediction,
        intent: str,
        route: ActionRoute,
        state: DialogueState,
    ) -> _Decision:
        """The routed action's answer; its failure is the routes' fallback message, counted
        like any turn the bot could not help with."""
        assert self.actions is not None
        composer = f"action:{route.action}"
        try:
            result = self.actions.caller.run(
                route.action,
                sender_id=conversation_id,
                slots=dict(state.slots),
                text=text,
                intent=intent,
                confidence=round(float(p.confidence), 4),
            )
        except ActionFailedError as e:
            return self._failure(
                state, self.actions.routes.fallback_message, "fallback", intent, note=str(e), composer=composer
            )
        for name, value in result.slots.items():
            if value is None:
                state.slots.pop(name, None)  # the next turn that gives it again continues the task
            else:
                state.slots[name] = value
        state.failures = 0
        return _Decision(result.reply, "answer", intent, composer, buttons=result.buttons, note=f"ran {route.action}")

    def _continues_task(
        self, masked: str, new_slots: dict[str, str], state: DialogueState, p: IntentPrediction, confident: bool
    ) -> bool:
        """Is this turn the slot the bot asked for ("it's #40318275"), not a new request?"""
        if not state.active_intent or not new_slots:
            return False
        if state.awaiting_slot and state.awaiting_slot not in new_slots:
            return False
        slot_only = len(PLACEHOLDER_RE.sub(" ", masked).split()) <= _SLOT_ONLY_MAX_WORDS
        new_task = confident and p.intent != state.active_intent and p.intent not in self.domain.smalltalk
        return slot_only or not new_task

    def _failure(
        self,
        state: DialogueState,
        reply: str,
        action: Action,
        intent: str | None,
        *,
        note: str | None = None,
        buttons: tuple[str, ...] = (),
        sources: tuple[Source, ...] = (),
        composer: str = "policy",
    ) -> _Decision:
        state.failures += 1
        if state.failures >= self.config.max_failures_before_handoff:
            return self._handoff(state, intent, f"{state.failures} turns in a row the bot could not help ({note})")
        return _Decision(reply, action, intent, composer, sources=sources, buttons=buttons, note=note)

    def _handoff(self, state: DialogueState, intent: str | None, reason: str) -> _Decision:
        state.handed_off = True
        state.awaiting_slot = None
        return _Decision(self.domain.handoff_message, "handoff", intent, "policy", note=reason, handoff_reason=reason)

    def _history(self, conversation_id: str) -> tuple[tuple[Role, str], ...]:
        """The last turns before this one, read from the store (not from memory)."""
        messages = self.store.messages(conversation_id)[-self.config.history_turns :]
        # the store writes only `Role` values into messages.role
        return tuple((cast(Role, m["role"]), m["text"]) for m in messages)


def silent_turn(
    conversation_id: str,
    message_id: int,
    *,
    intent: str | None,
    confidence: float,
    out_of_scope: bool,
    latency_ms: float = 0.0,
) -> TurnResult:
    """The turn of a conversation a human agent holds: no reply (action "agent");
    `message_id` is the customer's message."""
    return TurnResult(
        conversation_id=conversation_id,
        message_id=message_id,
        reply="",
        intent=intent,
        confidence=confidence,
        out_of_scope=out_of_scope,
        action="agent",
        sources=(),
        composer="agent",
        latency_ms=latency_ms,
        note="a human agent holds the conversation; the bot stayed silent",
    )


def reply_pieces(text: str) -> list[str]:
    """A reply cut into words with their trailing space: the pieces a channel streams."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def retrieve_for_intent(retriever: Retriever, vector: np.ndarray, intent: str | None, k: int) -> list[Hit]:
    """The best `k` units of `intent`, its best knowledge-base chunk, then the best `k`
    of any intent that are not already in.

    Filtering inside the search matters when the turn says little by itself: "it's
    #40318275" is equally close to every "here is my order number" unit in the corpus, and
    only the task it continues says which of them answer it. The intent's article is the
    policy to fall back on when no transcript reply fits.
    """
    hits: list[Hit] = []
    if intent:
        hits = retriever.search(vector, k=k, intent=intent) + retriever.search(vector, k=1, intent=intent, kind="kb")
    seen: set[str] = set()
    merged: list[Hit] = []
    for h in hits + retriever.search(vector, k=k):
        if h.unit.id not in seen:
            seen.add(h.unit.id)
            merged.append(h)
    return merged


def _sources(hits: list[Hit], composed: ComposedReply, k: int) -> tuple[Source, ...]:
    """The units the reply used first, then the other top hits, as (id, score, text)."""
    by_id = {h.unit.id: h for h in hits}
    ordered = [by_id[i] for i in composed.source_ids if i in by_id]
    ordered += [h for h in hits if h.unit.id not in composed.source_ids]
    return tuple(Source(h.unit.id, round(float(h.score), 4), h.unit.evidence_text) for h in ordered[:k])


def _match_option(text: str, options: list[str], domain: Domain) -> str | None:
    """The clarify option the customer picked, by button label or intent name."""
    norm = re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()
    if norm.isdigit() and 1 <= int(norm) <= len(options):  # a channel showed them as numbered text
        return options[int(norm) - 1]
    for intent in options:
        if norm in (domain.intent_name(intent).lower(), intent.replace("_", " ")):
            return intent
    return None
