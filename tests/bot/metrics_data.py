"""A small store of conversations whose support metrics are worked out by hand, for the
metrics tests (library, CLI, HTTP). Turns go through the store's own API; what only the
agent panel writes (handoff timings, take-overs, suggestions, agents) is plain SQL.

Three UTC days, 2024-05-01 to 2024-05-03 (the 2nd has nothing), plus a conversation on
each side of the range that must not count:

2024-05-01
  A  answer, answer; the customer rates the first reply 👍        -> bot resolved, confirmed
  B  answer; an agent rates it 👎 (agents' ratings do not count)   -> bot resolved, assumed
  C  fallback (no intent), handoff (billing); CSAT 5; handed over at 10:00:00, claimed
     10:01:00, first human reply 10:02:00, resolved 10:12:00 (FRT 120 s, handle 660 s);
     4 suggestions: sent, edited, discarded, still shown
  D  fallback; CSAT 2                                              -> neither
2024-05-03
  E  no message at all
  F  answer; CSAT 4                                                -> bot resolved, confirmed
  G  answer; an agent took it over at 12:00:00 (first reply 12:00:10, not a handoff),
     resolved 12:05:00 (handle 300 s)
  H  handoff (billing) at 13:00:00, first reply 13:00:30 (FRT 30 s), claimed 13:00:00,
     handed back 13:02:00 (handle 120 s); answer; handoff (refund) at 14:00:00, claimed,
     first reply 14:01:00 (FRT 60 s), still open
  I  handoff (no intent: out of scope), still waiting
"""

from __future__ import annotations

from bot.agents.handling import TOOK_OVER
from bot.store import ConversationStore, DialogueState, MessageRecord

SINCE, UNTIL = "2024-05-01", "2024-05-03"


def started(store: ConversationStore, at: str) -> str:
    """A conversation that started at `at` (UTC, ISO)."""
    cid = store.create_conversation(channel="web")
    store.db.execute("update conversations set created_at = ?, updated_at = ? where id = ?", [at, at, cid])
    store.db.commit()
    return cid


def turn(
    store: ConversationStore,
    cid: str,
    action: str = "answer",
    intent: str | None = "order_status",
    handoff: bool = False,
) -> int:
    """One customer message and the bot's reply; returns the reply's message id."""
    return store.record_turn(
        cid,
        MessageRecord("customer", "hello", intent=intent),
        MessageRecord("bot", "a reply", intent=intent, action=action),
        DialogueState(handed_off=handoff),
        handoff_reason="customer asked for a human" if handoff else None,
    )


def time_episode(store: ConversationStore, message_id: int, **timings: str | None) -> None:
    """Set the timings (created_at, claimed_at, first_response_at, closed_at) of the
    handoff the bot made with message `message_id`."""
    columns = ", ".join(f"{name} = ?" for name in timings)
    store.db.execute(f"update handoffs set {columns} where message_id = ?", [*timings.values(), message_id])
    store.db.commit()


def add_agent(store: ConversationStore) -> int:
    at = "2024-04-01T00:00:00.000+00:00"
    store.db.execute(
        "insert into agents (name, role, password_hash, disabled, created_at, password_changed_at) "
        "values ('ann', 'agent', 'scrypt$x', 0, ?, ?)",
        [at, at],
    )
    store.db.commit()
    return int(store.db.execute("select id from agents where name = 'ann'").fetchone()[0])


def fill(store: ConversationStore) -> None:
    """Write the conversations the module docstring lists."""
    agent = add_agent(store)
    day1, day3 = "2024-05-01T", "2024-05-03T"

    a = started(store, day1 + "09:00:00.000+00:00")
    store.add_feedback(turn(store, a), "up")
    turn(store, a)

    b = started(store, day1 + "09:30:00.000+00:00")
    store.add_feedback(turn(store, b), "down", author="agent")

    c = started(store, day1 + "09:59:00.000+00:00")
    turn(store, c, "fallback", intent=None)
    handed = turn(store, c, "handoff", intent="billing", handoff=True)
    time_episode(
        store,
        handed,
        created_at=day1 + "10:00:00.000+00:00",
        claimed_at=day1 + "10:01:00.000+00:00",
        first_response_at=day1 + "10:02:00.000+00:00",
        closed_at=day1 + "10:12:00.000+00:00",
    )
    store.add_csat(c, 5)
    for rank, outcome in enumerate(("sent", "edited", "discarded", "shown")):
        store.db.execute(
            "insert into suggestions (conversation_id, for_message_id, agent_id, rank, kind, text, shown_at, "
            "outcome) values (?, ?, ?, ?, 'retrieved', 'try this', ?, ?)",
            [c, handed - 1, agent, rank, day1 + "10:01:30.000+00:00", outcome],
        )
    store.db.commit()

    d = started(store, day1 + "23:59:59.999+00:00")
    turn(store, d, "fallback")
    store.add_csat(d, 2)

    started(store, day3 + "00:00:00.000+00:00")  # E

    f = started(store, day3 + "08:00:00.000+00:00")
    turn(store, f)
    store.add_csat(f, 4)

    g = started(store, day3 + "11:00:00.000+00:00")
    taken = turn(store, g)
    store.db.execute(  # as ConversationHandling.take_over writes it: the last message, the reason
        "insert into handoffs (conversation_id, message_id, reason, status, created_at, agent_id, claimed_at, "
        "first_response_at, closed_at, outcome) values (?, ?, ?, 'closed', ?, ?, ?, ?, ?, 'resolved')",
        [
            g,
            taken,
            TOOK_OVER,
            day3 + "12:00:00.000+00:00",
            agent,
            day3 + "12:00:00.000+00:00",
            day3 + "12:00:10.000+00:00",
            day3 + "12:05:00.000+00:00",
        ],
    )
    store.db.commit()

    h = started(store, day3 + "12:59:00.000+00:00")
    first = turn(store, h, "handoff", intent="billing", handoff=True)
    time_episode(
        store,
        first,
        created_at=day3 + "13:00:00.000+00:00",
        claimed_at=day3 + "13:00:00.000+00:00",
        first_response_at=day3 + "13:00:30.000+00:00",
        closed_at=day3 + "13:02:00.000+00:00",
    )
    turn(store, h)
    second = turn(store, h, "handoff", intent="refund", handoff=True)
    time_episode(
        store,
        second,
        created_at=day3 + "14:00:00.000+00:00",
        claimed_at=day3 + "14:00:20.000+00:00",
        first_response_at=day3 + "14:01:00.000+00:00",
    )

    i = started(store, day3 + "15:00:00.000+00:00")
    turn(store, i, "handoff", intent=None, handoff=True)

    # outside the range: the day before and the day after
    for at in ("2024-04-30T23:59:59.999+00:00", "2024-05-04T00:00:00.000+00:00"):
        turn(store, started(store, at), "handoff", intent="billing", handoff=True)


# the figures of the range, worked out by hand from the conversations above
TOTALS = {
    "conversations": 9,
    "conversations_with_customer_turns": 8,
    "customer_turns": 12,
    "handoff": {"conversations": 3, "rate": 0.375, "taken_over": 1},
    "bot_resolved": {
        "confirmed": 2,
        "assumed": 1,
        "total": 3,
        "rate": 0.375,
        "confirmed_rate": 0.25,
        "assumed_rate": 0.125,
    },
    "first_response_seconds": {"count": 3, "median": 60.0, "p90": 120.0},
    "handle_seconds": {"count": 3, "median": 300.0},
    "csat": {"count": 3, "mean": 3.6667, "share_4_or_more": 0.6667},
    "suggestions": {
        "shown": 4,
        "sent": 1,
        "edited": 1,
        "discarded": 1,
        "acceptance_rate": 0.25,
        "edit_rate": 0.25,
        "discard_rate": 0.25,
    },
    "fallback": {"bot_turns": 12, "fallbacks": 2, "rate": 0.1667},
}
HANDOFF_INTENTS = [
    {"intent": "billing", "handoffs": 2},
    {"intent": "refund", "handoffs": 1},
    {"intent": None, "handoffs": 1},
]
