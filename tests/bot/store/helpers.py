"""What the store tests share: one customer-and-bot turn written with typical values."""

from __future__ import annotations

from typing import Any

from bot.store import ConversationStore, DialogueState, MessageRecord


def turn(
    store: ConversationStore,
    conversation_id: str,
    customer: str = "where is my order",
    reply: str = "Could you tell me your order number?",
    **kw: Any,
) -> int:
    """Record one turn (a clarifying bot reply with one source); returns the bot message id.
    `state` sets the dialogue state written with it; other keywords go to `record_turn`."""
    return store.record_turn(
        conversation_id,
        MessageRecord("customer", customer),
        MessageRecord(
            "bot",
            reply,
            intent="order_status",
            confidence=0.9,
            action="clarify",
            sources=(("conv-1#t0", 0.81234),),
            composer="policy",
            latency_ms=12.5,
        ),
        kw.pop("state", DialogueState()),
        **kw,
    )
