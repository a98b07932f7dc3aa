"""Support metrics: how the bot and the human agents did, per UTC day and over a range.

What `csbot report` prints and GET /api/v1/agent/metrics answers. Pure reads of the
conversation store: nothing here writes, and the clock comes in as `now`.

Every figure follows the conversation: a conversation, and everything in it (its turns,
handoffs, ratings, CSAT score, suggestions), counts on the UTC day the conversation
started. A day's figures therefore describe one cohort of conversations, totals are the
days' counts added up, and no rate can pass 1 because a conversation ran past midnight.
A conversation started before `since` is not in the report, even if it went on inside it.

A rate whose denominator is 0 (a day without conversations, without suggestions...) is
`null`, never a division by zero; so are the median, p90 and mean of nothing. Rates and
means are rounded to 4 decimals, durations to the millisecond (3 decimals of a second).

The JSON (`support_metrics` returns it as a dict):

- `since`, `until`: the range asked for, UTC days, both included ("YYYY-MM-DD").
- `generated_at`: when the report was made (`now`, ISO 8601 UTC).
- `totals`: the figures below over the whole range.
- `days`: one object per day of the range, oldest first, `date` ("YYYY-MM-DD") and the
  figures below; a day without conversations is there too, with zero counts and null rates.
- `handoff_intents`: the intents that hand over most in the range, at most 10, most first
  (ties by intent name): `{"intent", "handoffs"}`, where `intent` is what the classifier
  made of the customer message the bot answered by handing over (null when it had none:
  out of scope) and `handoffs` counts those bot handoffs (a conversation handed over twice
  counts twice).

The figures (each of `totals` and every day):

- `conversations`: conversations started.
- `conversations_with_customer_turns`: those of them in which the customer wrote at least
  once (the denominator of the handoff and bot-resolved rates).
- `customer_turns`: messages the customers wrote.
- `handoff`: the bot handing conversations to a human.
  - `conversations`: conversations the bot handed over at least once (an agent taking a
    conversation over on their own is not a handoff: see `taken_over`);
  - `rate`: `conversations` / `conversations_with_customer_turns`;
  - `taken_over`: conversations an agent took from the bot without the bot handing over.
- `bot_resolved`: conversations the bot handled alone (no human ever had them: neither a
  handoff nor a take-over) and that ended well.
  - `confirmed`: the customer said so: a CSAT of 4 or 5, or a customer 👍 on a bot reply
    with no CSAT of 1 or 2;
  - `assumed`: not confirmed, but nothing says otherwise: no customer 👎, no CSAT of 1 or
    2, and the last bot reply was not a fallback;
  - `total`: `confirmed` + `assumed`;
  - `rate`, `confirmed_rate`, `assumed_rate`: each count / `conversations_with_customer_turns`.
- `first_response_seconds`: from the bot handing over (handoffs.created_at) to a human's
  first message (handoffs.first_response_at), over the bot's handoffs that got one.
  - `count`, `median`, `p90` (the nearest-rank 90th percentile: the smallest time that
    90% of the handoffs were answered within).
- `handle_seconds`: from an agent taking a conversation (handoffs.claimed_at) to the end of
  that episode (handoffs.closed_at: resolved or handed back), over the episodes with both,
  handoffs and take-overs alike.
  - `count`, `median`.
- `csat`: the customers' satisfaction scores (1-5).
  - `count`, `mean`, `share_4_or_more` (scores of 4 or 5 / `count`).
- `suggestions`: replies suggested to agents, each counted once it was shown.
  - `shown`: suggestions shown (whatever became of them);
  - `sent`, `edited`, `discarded`: sent as they were, sent after an edit, thrown away
    (the rest are still undecided);
  - `acceptance_rate` (`sent` / `shown`), `edit_rate` (`edited` / `shown`),
    `discard_rate` (`discarded` / `shown`).
- `fallback`: the bot's replies that said it could not help.
  - `bot_turns`: the bot's replies; `fallbacks`: those with action "fallback";
  - `rate`: `fallbacks` / `bot_turns`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.agents.handling import TOOK_OVER
from bot.errors import CsbotError
from bot.settings import STORE_FILE
from bot.store import ConversationStore
from bot.workspace import read_manifest

MAX_DAYS = 366  # one report's range: a year, leap day included
TOP_HANDOFF_INTENTS = 10


class MetricsRangeError(CsbotError):
    """The days asked for are not a valid range (HTTP 422). `field` names the bad one."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def parse_day(text: str, name: str) -> date:
    """A UTC day given as YYYY-MM-DD; `name` is what the caller calls it (--since, since)."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise MetricsRangeError(
            name, f"{name} {text!r} is not a date; give it as YYYY-MM-DD, e.g. 2024-05-01"
        ) from None


def check_range(
    since: date, until: date | None, now: datetime | None = None, names: tuple[str, str] = ("since", "until")
) -> date:
    """The range's last day (`until`, or `now`'s UTC day when it is None), once the range
    is valid: not backwards and at most MAX_DAYS long."""
    last = until if until is not None else _utc(now).date()
    if last < since:
        raise MetricsRangeError(
            names[1], f"{names[1]} {last.isoformat()} is before {names[0]} {since.isoformat()}; swap them"
        )
    if (last - since).days + 1 > MAX_DAYS:
        raise MetricsRangeError(
            names[1],
            f"{since.isoformat()} to {last.isoformat()} is {(last - since).days + 1} days; a report covers at most "
            f"{MAX_DAYS}: ask for the range in parts",
        )
    return last


def support_metrics(
    store: ConversationStore, since: date, until: date | None = None, *, now: datetime | None = None
) -> dict[str, Any]:
    """The support figures for the conversations started from `since` to `until` (UTC days,
    both included; `until` defaults to `now`'s day, `now` to the wall clock), per day and in
    total, as the JSON the module docstring describes."""
    now = _utc(now)
    until = check_range(since, until, now)
    start, end = since.isoformat(), (until + timedelta(days=1)).isoformat()
    days = {(since + timedelta(days=i)).isoformat(): _Tally() for i in range((until - since).days + 1)}
    for row in _conversation_facts(store, start, end):
        days[row["day"]].add_conversation(row)
    for row in _episodes(store, start, end):
        days[row["day"]].add_episode(row)
    totals = _Tally()
    for tally in days.values():
        totals.merge(tally)
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "generated_at": now.isoformat(timespec="milliseconds"),
        "totals": totals.figures(),
        "days": [{"date": day, **tally.figures()} for day, tally in days.items()],
        "handoff_intents": _handoff_intents(store, start, end),
    }


def support_metrics_in_workspace(
    workspace: Path,
    since: date,
    until: date | None = None,
    *,
    now: datetime | None = None,
    store_target: Path | str | None = None,
) -> dict[str, Any]:
    """`support_metrics` on a built workspace's store (the CLI); `store_target`: its store
    when that is not the workspace's file (`CsbotSettings.store_target`)."""
    read_manifest(workspace)  # a missing build says how to make one, before a store is created
    with ConversationStore(store_target or workspace / STORE_FILE) as store:
        return support_metrics(store, since, until, now=now)


# -- reading the store ----------------------------------------------------------------

_CUSTOMER_RATING = "coalesce(f.author, 'customer') = 'customer'"  # ratings from before authors were kept

_CONVERSATION_FACTS = f"""
select
  substr(c.created_at, 1, 10) as day,
  (select count(*) from messages m where m.conversation_id = c.id and m.role = 'customer') as customer_turns,
  (select count(*) from messages m where m.conversation_id = c.id and m.role = 'bot') as bot_turns,
  (select count(*) from messages m
    where m.conversation_id = c.id and m.role = 'bot' and m.action = 'fallback') as fallbacks,
  (select m.action from messages m where m.conversation_id = c.id and m.role = 'bot'
    order by m.turn desc limit 1) as last_bot_action,
  exists (select 1 from handoffs h where h.conversation_id = c.id and h.reason != :took_over) as handed_over,
  exists (select 1 from handoffs h where h.conversation_id = c.id) as human_handled,
  exists (select 1 from feedback f join messages m on m.id = f.message_id
    where m.conversation_id = c.id and f.rating = 'up' and {_CUSTOMER_RATING}) as thumbs_up,
  exists (select 1 from feedback f join messages m on m.id = f.message_id
    where m.conversation_id = c.id and f.rating = 'down' and {_CUSTOMER_RATING}) as thumbs_down,
  (select s.score from csat s where s.conversation_id = c.id order by s.id desc limit 1) as csat,
  (select count(*) from suggestions s where s.conversation_id = c.id) as shown,
  (select count(*) from suggestions s where s.conversation_id = c.id and s.outcome = 'sent') as sent,
  (select count(*) from suggestions s where s.conversation_id = c.id and s.outcome = 'edited') as edited,
  (select count(*) from suggestions s where s.conversation_id = c.id and s.outcome = 'discarded') as discarded
from conversations c
where c.created_at >= :start and c.created_at < :end
"""


def _conversation_facts(store: ConversationStore, start: str, end: str) -> Iterable[dict[str, Any]]:
    """One row per conversation started in [start, end): what the figures need of it."""
    return store.db.query(_CONVERSATION_FACTS, {"start": start, "end": end, "took_over": TOOK_OVER})


def _episodes(store: ConversationStore, start: str, end: str) -> Iterable[dict[str, Any]]:
    """Every episode of human handling of those conversations, with its timings."""
    return store.db.query(
        "select substr(c.created_at, 1, 10) as day, h.created_at, h.claimed_at, h.first_response_at, h.closed_at, "
        "h.reason != :took_over as by_bot "
        "from handoffs h join conversations c on c.id = h.conversation_id "
        "where c.created_at >= :start and c.created_at < :end",
        {"start": start, "end": end, "took_over": TOOK_OVER},
    )


def _handoff_intents(store: ConversationStore, start: str, end: str) -> list[dict[str, Any]]:
    """The intents of the customer messages the bot answered by handing over, most first."""
    rows = store.db.query(
        "select cm.intent as intent, count(*) as handoffs "
        "from handoffs h join conversations c on c.id = h.conversation_id "
        "join messages b on b.id = h.message_id "
        "left join messages cm on cm.conversation_id = b.conversation_id and cm.turn = b.turn - 1 "
        "and cm.role = 'customer' "
        "where c.created_at >= :start and c.created_at < :end and h.reason != :took_over "
        "group by cm.intent order by handoffs desc, cm.intent is null, cm.intent limit :top",
        {"start": start, "end": end, "took_over": TOOK_OVER, "top": TOP_HANDOFF_INTENTS},
    )
    return [{"intent": r["intent"], "handoffs": r["handoffs"]} for r in rows]


# -- adding up ------------------------------------------------------------------------


@dataclass
class _Tally:
    """The counts and durations behind one day's (or the range's) figures."""

    conversations: int = 0
    engaged: int = 0  # with a customer turn
    customer_turns: int = 0
    handed_over: int = 0
    taken_over: int = 0
    confirmed: int = 0
    assumed: int = 0
    csat: list[int] = field(default_factory=list)
    shown: int = 0
    sent: int = 0
    edited: int = 0
    discarded: int = 0
    bot_turns: int = 0
    fallbacks: int = 0
    first_response: list[float] = field(default_factory=list)
    handle: list[float] = field(default_factory=list)

    def add_conversation(self, row: dict[str, Any]) -> None:
        self.conversations += 1
        self.engaged += row["customer_turns"] > 0
        self.customer_turns += row["customer_turns"]
        self.handed_over += bool(row["handed_over"])
        self.taken_over += bool(row["human_handled"] and not row["handed_over"])
        csat = row["csat"]
        if csat is not None:
            self.csat.append(int(csat))
        unhappy = csat is not None and csat <= 2
        if row["customer_turns"] > 0 and not row["human_handled"]:
            if not unhappy and ((csat is not None and csat >= 4) or row["thumbs_up"]):
                self.confirmed += 1
            elif not unhappy and not row["thumbs_down"] and row["last_bot_action"] != "fallback":
                self.assumed += 1
        self.shown += row["shown"]
        self.sent += row["sent"]
        self.edited += row["edited"]
        self.discarded += row["discarded"]
        self.bot_turns += row["bot_turns"]
        self.fallbacks += row["fallbacks"]

    def add_episode(self, row: dict[str, Any]) -> None:
        if row["by_bot"] and row["first_response_at"]:
            self.first_response.append(_seconds(row["created_at"], row["first_response_at"]))
        if row["claimed_at"] and row["closed_at"]:
            self.handle.append(_seconds(row["claimed_at"], row["closed_at"]))

    def merge(self, other: _Tally) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    def figures(self) -> dict[str, Any]:
        engaged = self.engaged
        resolved = self.confirmed + self.assumed
        return {
            "conversations": self.conversations,
            "conversations_with_customer_turns": engaged,
            "customer_turns": self.customer_turns,
            "handoff": {
                "conversations": self.handed_over,
                "rate": _rate(self.handed_over, engaged),
                "taken_over": self.taken_over,
            },
            "bot_resolved": {
                "confirmed": self.confirmed,
                "assumed": self.assumed,
                "total": resolved,
                "rate": _rate(resolved, engaged),
                "confirmed_rate": _rate(self.confirmed, engaged),
                "assumed_rate": _rate(self.assumed, engaged),
            },
            "first_response_seconds": {
                "count": len(self.first_response),
                "median": _duration(_median(self.first_response)),
                "p90": _duration(_nearest_rank(self.first_response, 0.9)),
            },
            "handle_seconds": {"count": len(self.handle), "median": _duration(_median(self.handle))},
            "csat": {
                "count": len(self.csat),
                "mean": _rate(sum(self.csat), len(self.csat)),
                "share_4_or_more": _rate(sum(1 for s in self.csat if s >= 4), len(self.csat)),
            },
            "suggestions": {
                "shown": self.shown,
                "sent": self.sent,
                "edited": self.edited,
                "discarded": self.discarded,
                "acceptance_rate": _rate(self.sent, self.shown),
                "edit_rate": _rate(self.edited, self.shown),
                "discard_rate": _rate(self.discarded, self.shown),
            },
            "fallback": {
                "bot_turns": self.bot_turns,
                "fallbacks": self.fallbacks,
                "rate": _rate(self.fallbacks, self.bot_turns),
            },
        }


def _utc(moment: datetime | None) -> datetime:
    """`moment` in UTC (a naive one is taken as UTC); the wall clock when None."""
    if moment is None:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _seconds(start: str, end: str) -> float:
    """Seconds from one stored timestamp to another (0 when the clocks disagree)."""
    elapsed = _utc(datetime.fromisoformat(end)) - _utc(datetime.fromisoformat(start))
    return max(0.0, elapsed.total_seconds())


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _duration(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _nearest_rank(values: list[float], share: float) -> float | None:
    """The smallest value that at least `share` of the values are at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
