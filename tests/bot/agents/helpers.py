"""What the agent-panel tests share: a clock they move by hand, and conversations put in
the states the panel handles (through the store's own turn writer)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.agents.clock import timestamp
from bot.store import ConversationStore, DialogueState, MessageRecord


class FakeClock:
    """Starts at the real time (the store's own rows use it) and moves only when told."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def bot_turn(store: ConversationStore, cid: str, customer: str = "where is my order", **kw: object) -> int:
    """One customer message and the bot's reply; returns the bot message id."""
    return store.record_turn(
        cid,
        MessageRecord("customer", customer),
        MessageRecord("bot", "Could you tell me your order number?", intent="order_status", confidence=0.9),
        kw.pop("state", DialogueState()),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def pending_conversation(
    store: ConversationStore,
    clock: FakeClock | None = None,
    *,
    waited_minutes: float = 0.0,
    customer: str = "I want to talk to a person",
    channel: str = "web",
) -> str:
    """A conversation the bot handed over (handling 'pending'), waiting since
    `waited_minutes` before the clock's now."""
    cid = store.create_conversation(channel=channel)
    bot_turn(
        store,
        cid,
        customer,
        state=DialogueState(slots={"order_id": "#123"}, failures=2, handed_off=True),
        handoff_reason="customer asked for a human",
    )
    if clock is not None:
        since = timestamp(clock() - timedelta(minutes=waited_minutes))
        store.db.execute("update handoffs set created_at = ? where conversation_id = ?", [since, cid])
        store.db.execute("update conversations set handling_changed_at = ? where id = ?", [since, cid])
    return cid
