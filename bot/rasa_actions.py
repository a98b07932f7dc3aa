"""csbot's own Rasa action server, for teams that already run a Rasa assistant:

    CSBOT_WORKSPACE=.csbot python -m rasa_sdk --actions bot.rasa_actions --port 5055

exposes two custom actions (docs/rasa.md shows the Rasa side):

- `action_grounded_reply`: csbot's answer to the tracker's latest message: the turn is
  masked, embedded, classified and retrieved for exactly as `DialogueManager` does it, and
  the live composer (the promoted GPT-2 when there is one, retrieval otherwise) writes the
  reply. The response's `custom` payload carries what it rests on: the sources (unit ids,
  scores, kinds, knowledge-base titles), csbot's intent and confidence, and whether the
  reply is an answer, a clarifying question or a fallback. Rasa owns the conversation
  here: the slots and the history the composer sees come from the tracker, and nothing is
  written to csbot's store.
- `action_handoff`: the workspace domain's handoff message, the custom payload
  `{"handoff": true, "reason": ...}` and the slot `csbot_handoff` set, for the Rasa bot
  (or its channel) to route the conversation to a human.

The assistant is loaded once per process, on first use, by the one module-level
`AssistantHolder`. This is the single place csbot keeps a process-wide object rather than
passing it in through a constructor: rasa-sdk finds `Action` subclasses itself and
instantiates them with no arguments (in each Sanic worker, after pickling them), so there
is no constructor to pass an assistant through. The action instances stay stateless; the
holder reads its settings from the environment (`CsbotSettings.from_env`, so
`CSBOT_WORKSPACE` and every other `CSBOT_*` variable apply) when it first loads.

Generation runs off the event loop (`asyncio.to_thread`), one turn at a time under the
holder's lock, since an `Assistant` (its models and their buffers) is not thread-safe. A
workspace that is missing or broken never takes the server down: the error is logged with
what to do, the customer gets a polite reply, and loading is tried again at most every
`retry_after_s` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.contracts import ComposeRequest, Role, Slots
from bot.dialogue import retrieve_for_intent, validate_message
from bot.domain import Domain
from bot.errors import CsbotError, InvalidMessageError
from bot.settings import CsbotSettings
from bot.workspace import Assistant
from retrieval.entities import find_entities, mask_entities, masked_card, redact_card_numbers
from retrieval.types import Hit

logger = logging.getLogger(__name__)

GROUNDED_REPLY_ACTION = "action_grounded_reply"
HANDOFF_ACTION = "action_handoff"
# the Rasa slot `action_handoff` sets (declare it in domain.yml, see docs/rasa.md)
HANDOFF_SLOT = "csbot_handoff"
# what the customer reads when the workspace cannot be loaded or a turn fails
UNAVAILABLE_REPLY = (
    "I'm sorry, I can't look that up right now. Please try again in a moment, "
    "or ask to speak with a member of our team."
)

T = TypeVar("T")


class AssistantUnavailableError(CsbotError):
    """The workspace could not be loaded (the log says why and what to do)."""


@dataclass(frozen=True)
class RasaReply:
    """One action's output: the message text, its `custom` payload and the tracker events."""

    text: str
    custom: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)


class AssistantHolder(Generic[T]):
    """Loads an assistant on first use and hands it to one caller at a time.

    A failed load is remembered for `retry_after_s` seconds (of `clock`): the calls in
    between fail at once with the same error instead of each loading the models again."""

    def __init__(self, load: Callable[[], T], retry_after_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self._load = load
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._loaded: T | None = None
        self._failed_at: float | None = None
        self._error = ""

    def call(self, work: Callable[[T], Any]) -> Any:
        """`work(assistant)` under the lock; AssistantUnavailableError if it cannot load."""
        with self._lock:
            return work(self._get())

    def _get(self) -> T:
        if self._loaded is not None:
            return self._loaded
        now = self._clock()
        if self._failed_at is not None and now - self._failed_at < self.retry_after_s:
            raise AssistantUnavailableError(self._error)
        try:
            self._loaded = self._load()
        except CsbotError as e:
            self._fail(now, str(e))
            logger.error("csbot could not load its workspace: %s", self._error)
            raise AssistantUnavailableError(self._error) from e
        except Exception as e:
            self._fail(now, f"{type(e).__name__}: {e}")
            logger.exception("csbot could not load its workspace (%s)", self._error)
            raise AssistantUnavailableError(self._error) from e
        self._failed_at = None
        return self._loaded

    def _fail(self, now: float, reason: str) -> None:
        self._failed_at = now
        self._error = (
            f"{reason}. Point CSBOT_WORKSPACE at a workspace built with `csbot build`; "
            f"loading is tried again on a request after {self.retry_after_s:g} s."
        )


def load_assistant_from_env() -> Assistant:
    """The assistant of the workspace CSBOT_WORKSPACE names (settings from CSBOT_*)."""
    settings = CsbotSettings.from_env()
    logger.info("csbot: loading workspace %s", settings.workspace)
    return Assistant(settings).load()


# -- turning a Rasa tracker into a csbot turn ---------------------------------------


def latest_text(latest_message: Mapping[str, Any] | None) -> str:
    text = (latest_message or {}).get("text")
    return text if isinstance(text, str) else ""


def tracker_slots(slots: Mapping[str, Any], text: str) -> dict[str, str]:
    """The values the composer may fill placeholders from: the tracker's text and number
    slots (by csbot's slot names: order_id, email, ...), then what the latest message
    itself gives, as the dialogue manager finds it. A card number is kept as its last
    four digits only."""
    values = {
        name: str(value).strip()
        for name, value in slots.items()
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip()
    }
    values.update(find_entities(text))
    if "card_number" in values:
        values["card_number"] = masked_card(values["card_number"])
    return values


def history_from_events(events: Sequence[Mapping[str, Any]], turns: int) -> tuple[tuple[Role, str], ...]:
    """The turns before the latest user message, from the tracker's `user` and `bot`
    events, as csbot's (role, text) history: the last `turns` of them."""
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=len(events))
    history: list[tuple[Role, str]] = []
    for event in events[:last_user]:
        text = event.get("text")
        if not isinstance(text, str) or not text.strip():
            continue
        if event.get("event") == "user":
            history.append(("customer", redact_card_numbers(text)))
        elif event.get("event") == "bot":
            history.append(("bot", text))
    return tuple(history[-turns:]) if turns > 0 else ()


def sources_payload(hits: Sequence[Hit], used_ids: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The units the reply used first, then the other top hits: id, score, kind, the
    knowledge-base article's title (None for transcripts) and whether the reply used it."""
    by_id = {h.unit.id: h for h in hits}
    ordered = [by_id[i] for i in used_ids if i in by_id]
    ordered += [h for h in hits if h.unit.id not in used_ids]
    return [
        {
            "id": h.unit.id,
            "score": round(float(h.score), 4),
            "kind": h.unit.kind,
            "title": h.unit.title,
            "used": h.unit.id in used_ids,
        }
        for h in ordered[:k]
    ]


def handoff_reply(message: str, rasa_intent: str | None) -> RasaReply:
    reason = (
        f"the customer asked for a human (Rasa intent {rasa_intent})"
        if rasa_intent
        else "the Rasa assistant asked for a human"
    )
    return RasaReply(message, {"handoff": True, "reason": reason}, [SlotSet(HANDOFF_SLOT, True)])


def unavailable_reply(error: str) -> RasaReply:
    """What the customer gets when csbot cannot answer; `error` is a code, never details."""
    return RasaReply(UNAVAILABLE_REPLY, {"action": "fallback", "error": error, "sources": []})


# -- the turn ---------------------------------------------------------------------


def grounded_reply(
    assistant: Assistant, text: str, slots: dict[str, str], history: tuple[tuple[Role, str], ...]
) -> RasaReply:
    """csbot's reply to `text`: the same encode, classify and retrieve as a dialogue turn,
    then the live composer. Out of scope: the domain's fallback message (no sources)."""
    manager, cfg = assistant.manager, assistant.config.dialogue
    text = validate_message(text, cfg.max_message_chars)
    masked = mask_entities(text)[0]
    text = redact_card_numbers(text)
    vector = manager.embedder.encode([masked])
    prediction = manager.classifier.predict(vector, [masked])[0]
    about = {
        "intent": prediction.intent,
        "confidence": round(float(prediction.confidence), 4),
        "out_of_scope": prediction.out_of_scope,
    }
    if prediction.out_of_scope:
        return RasaReply(
            manager.domain.fallback_message, {"action": "fallback", "composer": "policy", **about, "sources": []}
        )
    hits = retrieve_for_intent(
        manager.retriever, vector, prediction.intent, max(cfg.retrieval_k, manager.composer.hits_wanted)
    )
    composed = manager.composer.compose(
        ComposeRequest(text=text, intent=prediction.intent, history=history, hits=tuple(hits), slots=Slots(slots))
    )
    custom: dict[str, Any] = {
        "action": composed.action,
        "composer": composed.composer,
        **about,
        "sources": sources_payload(hits, composed.source_ids, cfg.retrieval_k),
    }
    if composed.missing_slot:
        custom["missing_slot"] = composed.missing_slot
    return RasaReply(composed.text, custom)


async def answer_tracker(holder: AssistantHolder[Assistant], tracker: Tracker) -> RasaReply:
    """`action_grounded_reply`'s reply to the tracker's latest message; never raises."""
    text = latest_text(tracker.latest_message)
    slots = tracker_slots(tracker.current_slot_values(), text)
    events = list(tracker.events or [])

    def work(assistant: Assistant) -> RasaReply:
        history = history_from_events(events, assistant.config.dialogue.history_turns)
        return grounded_reply(assistant, text, slots, history)

    try:
        reply: RasaReply = await asyncio.to_thread(holder.call, work)
    except AssistantUnavailableError:
        return unavailable_reply("csbot_unavailable")  # logged once per load attempt
    except InvalidMessageError as e:  # empty or over-long: the message says what to do
        return RasaReply(str(e), {"action": "fallback", "error": "invalid_message", "sources": []})
    except Exception:
        logger.exception("csbot failed to answer %s's message", tracker.sender_id)
        return unavailable_reply("csbot_failed")
    return reply


async def handoff_for_tracker(holder: AssistantHolder[Assistant], tracker: Tracker) -> RasaReply:
    """`action_handoff`'s reply: the workspace domain's message, or csbot's default one
    when the workspace cannot be loaded (a handoff must never fail)."""
    try:
        message: str = await asyncio.to_thread(holder.call, lambda a: a.manager.domain.handoff_message)
    except AssistantUnavailableError:
        message = Domain().handoff_message
    intent = (tracker.latest_message or {}).get("intent") or {}
    name = intent.get("name") if isinstance(intent, dict) else None
    return handoff_reply(message, name if isinstance(name, str) else None)


# -- the actions rasa-sdk registers -----------------------------------------------

_ASSISTANT: AssistantHolder[Assistant] = AssistantHolder(load_assistant_from_env)


def _send(dispatcher: CollectingDispatcher, reply: RasaReply) -> list[dict[str, Any]]:
    dispatcher.utter_message(text=reply.text, json_message=reply.custom)
    return reply.events


class ActionGroundedReply(Action):
    """csbot's grounded answer to the latest message (a Rasa fallback)."""

    def name(self) -> str:
        return GROUNDED_REPLY_ACTION

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return _send(dispatcher, await answer_tracker(_ASSISTANT, tracker))


class ActionHandoff(Action):
    """Hand the conversation to a human: the message, and the marks a Rasa bot routes on."""

    def name(self) -> str:
        return HANDOFF_ACTION

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return _send(dispatcher, await handoff_for_tracker(_ASSISTANT, tracker))
