"""Support metrics on a real SQLite store whose figures were worked out by hand
(tests/bot/metrics_data.py): per-day cohorts, nulls for rates without a denominator, the
range's checks, and the clock coming only from `now`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from bot.metrics import MAX_DAYS, MetricsRangeError, check_range, parse_day, support_metrics
from bot.store import ConversationStore
from tests.bot import metrics_data

NOW = datetime(2024, 5, 3, 18, 30, tzinfo=UTC)
EMPTY_DAY = {
    "conversations": 0,
    "conversations_with_customer_turns": 0,
    "customer_turns": 0,
    "handoff": {"conversations": 0, "rate": None, "taken_over": 0},
    "bot_resolved": {
        "confirmed": 0,
        "assumed": 0,
        "total": 0,
        "rate": None,
        "confirmed_rate": None,
        "assumed_rate": None,
    },
    "first_response_seconds": {"count": 0, "median": None, "p90": None},
    "handle_seconds": {"count": 0, "median": None},
    "csat": {"count": 0, "mean": None, "share_4_or_more": None},
    "suggestions": {
        "shown": 0,
        "sent": 0,
        "edited": 0,
        "discarded": 0,
        "acceptance_rate": None,
        "edit_rate": None,
        "discard_rate": None,
    },
    "fallback": {"bot_turns": 0, "fallbacks": 0, "rate": None},
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store(request, tmp_path):
    """A store on each back end: the report's SQL runs on both."""
    target = tmp_path / "store.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with ConversationStore(target).open() as store:
        yield store


@pytest.fixture
def filled(store):
    metrics_data.fill(store)
    return store


def report(store, since=metrics_data.SINCE, until=metrics_data.UNTIL):
    return support_metrics(store, date.fromisoformat(since), date.fromisoformat(until) if until else None, now=NOW)


def test_the_totals_are_the_hand_worked_figures(filled):
    assert report(filled)["totals"] == metrics_data.TOTALS


def test_the_report_names_its_range_and_when_it_was_made(filled):
    result = report(filled)
    assert (result["since"], result["until"]) == ("2024-05-01", "2024-05-03")
    assert result["generated_at"] == "2024-05-03T18:30:00.000+00:00"


def test_each_day_holds_the_conversations_that_started_on_it(filled):
    days = report(filled)["days"]
    assert [d["date"] for d in days] == ["2024-05-01", "2024-05-02", "2024-05-03"]
    first, _, third = days
    assert (first["conversations"], first["customer_turns"]) == (4, 6)
    assert first["handoff"] == {"conversations": 1, "rate": 0.25, "taken_over": 0}
    assert first["bot_resolved"] == {
        "confirmed": 1,
        "assumed": 1,
        "total": 2,
        "rate": 0.5,
        "confirmed_rate": 0.25,
        "assumed_rate": 0.25,
    }
    assert first["first_response_seconds"] == {"count": 1, "median": 120.0, "p90": 120.0}
    assert first["handle_seconds"] == {"count": 1, "median": 660.0}
    assert first["csat"] == {"count": 2, "mean": 3.5, "share_4_or_more": 0.5}
    assert first["fallback"] == {"bot_turns": 6, "fallbacks": 2, "rate": 0.3333}

    assert (third["conversations"], third["conversations_with_customer_turns"]) == (5, 4)
    assert third["handoff"] == {"conversations": 2, "rate": 0.5, "taken_over": 1}
    assert third["bot_resolved"]["confirmed"] == 1 and third["bot_resolved"]["assumed_rate"] == 0.0
    assert third["first_response_seconds"] == {"count": 2, "median": 45.0, "p90": 60.0}
    assert third["handle_seconds"] == {"count": 2, "median": 210.0}
    assert third["suggestions"]["shown"] == 0 and third["suggestions"]["acceptance_rate"] is None
    assert third["fallback"]["rate"] == 0.0


def test_a_day_without_conversations_has_zero_counts_and_null_rates(filled):
    assert report(filled)["days"][1] == {"date": "2024-05-02", **EMPTY_DAY}


def test_the_intents_that_hand_over_most_come_first_and_no_intent_last(filled):
    assert report(filled)["handoff_intents"] == metrics_data.HANDOFF_INTENTS


def test_conversations_outside_the_range_do_not_count(filled):
    result = report(filled, "2024-05-04", "2024-05-04")
    assert result["totals"]["conversations"] == 1
    assert result["handoff_intents"] == [{"intent": "billing", "handoffs": 1}]


def test_only_the_top_ten_handoff_intents_are_listed(store):
    for n in range(12):
        cid = metrics_data.started(store, "2024-05-01T09:00:00.000+00:00")
        for _ in range(n + 1):
            metrics_data.turn(store, cid, "handoff", intent=f"intent_{n:02d}", handoff=True)
    intents = report(store, "2024-05-01", "2024-05-01")["handoff_intents"]
    assert [i["intent"] for i in intents] == [f"intent_{n:02d}" for n in range(11, 1, -1)]
    assert intents[0]["handoffs"] == 12


def test_an_empty_store_reports_zeros_not_errors(store):
    result = report(store)
    assert result["totals"] == EMPTY_DAY
    assert result["handoff_intents"] == []


def test_p90_is_the_nearest_rank_of_the_first_responses(store):
    for seconds in range(1, 11):  # ten handoffs answered after 10, 20, ... 100 s
        cid = metrics_data.started(store, "2024-05-01T09:00:00.000+00:00")
        message_id = metrics_data.turn(store, cid, "handoff", handoff=True)
        metrics_data.time_episode(
            store,
            message_id,
            created_at="2024-05-01T10:00:00.000+00:00",
            first_response_at=f"2024-05-01T10:{seconds * 10 // 60:02d}:{seconds * 10 % 60:02d}.000+00:00",
        )
    figures = report(store, "2024-05-01", "2024-05-01")["totals"]["first_response_seconds"]
    assert figures == {"count": 10, "median": 55.0, "p90": 90.0}


def test_a_csat_of_one_or_two_outweighs_a_thumbs_up(store):
    cid = metrics_data.started(store, "2024-05-01T09:00:00.000+00:00")
    store.add_feedback(metrics_data.turn(store, cid), "up")
    store.add_csat(cid, 1)
    resolved = report(store, "2024-05-01", "2024-05-01")["totals"]["bot_resolved"]
    assert (resolved["confirmed"], resolved["assumed"]) == (0, 0)


def test_a_customer_thumbs_down_is_not_assumed_resolved(store):
    cid = metrics_data.started(store, "2024-05-01T09:00:00.000+00:00")
    store.add_feedback(metrics_data.turn(store, cid), "down")
    resolved = report(store, "2024-05-01", "2024-05-01")["totals"]["bot_resolved"]
    assert (resolved["confirmed"], resolved["assumed"], resolved["rate"]) == (0, 0, 0.0)


def test_until_defaults_to_the_day_of_now(filled):
    result = support_metrics(
        filled, date(2024, 5, 1), None, now=datetime(2024, 5, 3, 1, 0, tzinfo=timezone(timedelta(hours=3)))
    )
    # 01:00 at UTC+3 is still the 2nd in UTC
    assert result["until"] == "2024-05-02"
    assert result["generated_at"] == "2024-05-02T22:00:00.000+00:00"


def test_a_backwards_range_is_refused_naming_the_end(filled):
    with pytest.raises(MetricsRangeError, match="until 2024-04-30 is before since 2024-05-01") as caught:
        report(filled, "2024-05-01", "2024-04-30")
    assert caught.value.field == "until"


def test_a_range_longer_than_the_limit_is_refused():
    since = date(2023, 1, 1)
    assert check_range(since, since + timedelta(days=MAX_DAYS - 1)) == since + timedelta(days=MAX_DAYS - 1)
    with pytest.raises(MetricsRangeError, match=f"at most {MAX_DAYS}"):
        check_range(since, since + timedelta(days=MAX_DAYS))


@pytest.mark.parametrize("text", ["2024-13-01", "2024-02-30", "2024-5-1", "20240501", "yesterday", ""])
def test_a_day_that_is_not_yyyy_mm_dd_is_refused_with_the_form_to_use(text):
    with pytest.raises(MetricsRangeError, match=r"--since .* is not a date; give it as YYYY-MM-DD") as caught:
        parse_day(text, "--since")
    assert caught.value.field == "--since"


def test_reporting_writes_nothing(filled):
    def snapshot() -> list[str]:  # every row of every table
        db = filled.db
        return [str(row) for table in db.table_names() for row in db.query(f"select * from {table} order by 1")]

    before = snapshot()
    report(filled)
    assert snapshot() == before
