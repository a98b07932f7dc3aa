"""Turns as the HTTP channel takes them. These functions run on an inference worker's
thread, with that worker's `Assistant` (never on the event loop).

Retries are idempotent: a message that carries a `client_message_id` the conversation
already has (the widget's offline queue re-sending it, a client retrying after a dropped
connection) gets the stored reply back and takes no second turn. The functions here that
take a turn are marked `conversation_turn`: the inference pool runs them under the
conversation's lock (one worker per conversation within a replica; across replicas the
lock of CSBOT_CONVERSATION_LOCK), so the check below runs inside it and sees any earlier
copy, even one that another replica was still answering when this copy arrived: this
copy waits for that turn, then finds its stored reply. Should two copies still meet
(the lock is "process" on several replicas), the store's unique index has the last word
(`DuplicateClientMessageError`, nothing written) and the stored reply is returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bot.contracts import Source, TurnResult
from bot.dialogue import reply_pieces, silent_turn, validate_message
from bot.server.conversation_lock import conversation_turn
from bot.server.errors import ClientMessageConflictError
from bot.store import DuplicateClientMessageError
from bot.workspace import Assistant
from retrieval.entities import redact_card_numbers


@conversation_turn
def take_turn(
    assistant: Assistant, conversation_id: str, text: str, client_message_id: str | None, channel: str = "web"
) -> TurnResult:
    """One turn, or the stored one when this `client_message_id` was answered before."""
    stored = stored_turn(assistant, conversation_id, text, client_message_id)
    if stored is not None:
        return stored
    try:
        return assistant.manager.handle(text, conversation_id, channel, client_message_id)
    except DuplicateClientMessageError:  # another replica took this message meanwhile
        return duplicate_turn(assistant, conversation_id, text, client_message_id)


@conversation_turn
def stream_turn(
    assistant: Assistant, conversation_id: str, text: str, client_message_id: str | None
) -> Iterator[str | TurnResult]:
    """`take_turn` as text pieces followed by the `TurnResult` (`handle_stream`'s contract)."""
    stored = stored_turn(assistant, conversation_id, text, client_message_id)
    if stored is None:
        streamed = False
        try:
            for item in assistant.manager.handle_stream(text, conversation_id, "web", client_message_id):
                streamed = streamed or isinstance(item, str)
                yield item
            return
        except DuplicateClientMessageError:  # raised when the turn is stored, after its pieces
            stored = duplicate_turn(assistant, conversation_id, text, client_message_id)
        if streamed:
            # another replica answered the same message first (only possible without a shared
            # conversation lock): its stored reply is the one kept, and `final` carries it
            yield stored
            return
    yield from reply_pieces(stored.reply)
    yield stored


@conversation_turn
def rasa_turn(assistant: Assistant, conversation_id: str, text: str) -> dict[str, Any]:
    """A turn from the Rasa REST channel, in the conversation the route derived from the
    sender (made on first use); the public reply object."""
    assistant.store.ensure_conversation(conversation_id, channel="rest")
    return public_reply(assistant, assistant.manager.handle(text, conversation_id, "rest"))


@conversation_turn
def public_turn(assistant: Assistant, conversation_id: str, text: str, client_message_id: str | None) -> dict[str, Any]:
    """`take_turn`, as the public reply object."""
    return public_reply(assistant, take_turn(assistant, conversation_id, text, client_message_id))


@conversation_turn
def stream_public_turn(
    assistant: Assistant, conversation_id: str, text: str, client_message_id: str | None
) -> Iterator[str | dict[str, Any]]:
    """`stream_turn`, ending with the public reply object instead of the `TurnResult`.

    A client that leaves mid-reply closes this iterator: the turn still runs to its end,
    unheard, so the customer's message and the reply are stored (the reply streams while it
    is decoded, before the turn is written) and a retry with the same `client_message_id`
    gets them back instead of a second turn."""
    listening = True
    for item in stream_turn(assistant, conversation_id, text, client_message_id):
        if not listening:
            continue
        try:
            yield item if isinstance(item, str) else public_reply(assistant, item)
        except GeneratorExit:
            listening = False


def public_reply(assistant: Assistant, result: TurnResult) -> dict[str, Any]:
    """What a customer may see of a turn: the reply, its id (for feedback), the action,
    the quick replies, and as sources only the knowledge-base articles it drew on.

    Everything else stays inside (`csbot ask`, the store, the agent panel): the intent and
    confidence, the composer's note, the conversation's slots, and every transcript hit,
    because a transcript unit is another customer's conversation (after an order lookup
    it may describe that customer's order)."""
    citations: list[dict[str, str]] = []
    seen: set[str] = set()
    for source in result.sources:
        unit = assistant.index.get(source.id)
        if unit is None or unit.kind != "kb" or unit.source_id in seen:
            continue
        seen.add(unit.source_id)
        chunk = unit.text.split("\n\n", 1)[-1] if unit.title else unit.text
        citations.append({"id": unit.source_id, "title": unit.title or unit.source_id, "text": chunk})
    return {
        "conversation_id": result.conversation_id,
        "message_id": result.message_id,
        "reply": result.reply,
        "action": result.action,
        "buttons": list(result.buttons),
        "sources": citations,
        # a goodbye answered: the moment a channel may ask for a satisfaction score
        "ends_conversation": result.action == "smalltalk" and result.intent == "goodbye",
    }


def stored_turn(
    assistant: Assistant, conversation_id: str, text: str, client_message_id: str | None
) -> TurnResult | None:
    """The turn that answered `client_message_id` before, rebuilt from the store; None
    when there is none. The same id with another text is a client bug: 409."""
    if client_message_id is None:
        return None
    found = assistant.store.turn_for_client_message(conversation_id, client_message_id)
    if found is None:
        return None
    customer, bot = found
    # the store keeps a card number as its last four digits: compare the text as stored
    sent = redact_card_numbers(validate_message(text, assistant.config.dialogue.max_message_chars))
    if customer["text"] != sent:
        raise ClientMessageConflictError(client_message_id)
    if bot is None:  # a human agent held the conversation: the bot said nothing then
        return silent_turn(
            conversation_id,
            customer["id"],
            intent=customer["intent"],
            confidence=customer["confidence"] or 0.0,
            out_of_scope=bool(customer["out_of_scope"]),
        )
    sources = tuple(Source(s["id"], s["score"], _unit_text(assistant, s["id"])) for s in bot["sources"])
    return TurnResult(
        conversation_id=conversation_id,
        message_id=bot["id"],
        reply=bot["text"],
        intent=bot["intent"],
        confidence=bot["confidence"] or 0.0,
        out_of_scope=bool(bot["out_of_scope"]),
        action=bot["action"],
        sources=sources,
        composer=bot["composer"] or "policy",
        latency_ms=bot["latency_ms"] or 0.0,
        buttons=tuple(bot["buttons"]),
        # slots as they are now (the store keeps the latest state, not each turn's)
        slots=dict(assistant.store.load_state(conversation_id).slots),
        note=bot["note"],
    )


def duplicate_turn(assistant: Assistant, conversation_id: str, text: str, client_message_id: str | None) -> TurnResult:
    """`stored_turn` after the store refused the message as a duplicate: the store raises
    `DuplicateClientMessageError` only when it holds that message's whole turn."""
    stored = stored_turn(assistant, conversation_id, text, client_message_id)
    assert stored is not None, "DuplicateClientMessageError means the store holds the turn"
    return stored


def _unit_text(assistant: Assistant, unit_id: str) -> str:
    unit = assistant.index.get(unit_id)
    return unit.evidence_text if unit is not None else ""


def warm_up(assistant: Assistant) -> None:
    """Run the models once on this worker's thread before it takes traffic: the first
    encode on a thread starts torch's thread pool and allocators (hundreds of ms), which
    would otherwise land on the first customer's turn. Writes nothing."""
    text = "where is my order?"
    vector = assistant.embedder.encode([text])
    assistant.classifier.predict(vector, [text])
    assistant.index.search(vector, k=assistant.config.dialogue.retrieval_k)
