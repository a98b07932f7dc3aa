"""The agent panel's notion of "now": an injected clock, and the timestamps rows store.

Sessions expire, sign-in failures leave their window and the queue counts waiting time;
tests drive all of that by handing in a clock instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: the current time in UTC."""
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """`moment` as every store row writes it (ISO 8601 in UTC, milliseconds), so that rows
    written by the panel and by the store compare as strings too."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_timestamp(value: str) -> datetime:
    """A stored timestamp back as an aware UTC datetime (naive values are read as UTC)."""
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
