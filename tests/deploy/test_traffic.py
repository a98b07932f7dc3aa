"""The store audit of the replicas tests finds each kind of damage it reports: a checker
that passed everything would make the fault tests prove nothing. The store here is a real
SQLite file with the columns the audit reads, written row by row, so that rows the real
store's unique index would refuse (a message stored twice) can be written too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.deploy.traffic import SentMessage, Traffic, audit_store

CONVERSATION = "c1"


def store_with(path: Path, rows: list[tuple[int, str, str | None]]) -> Path:
    """A store file holding CONVERSATION's messages: (turn, role, client_message_id); the
    message id is 100 + turn."""
    with sqlite3.connect(path) as db:
        db.execute(
            "create table messages (id integer, conversation_id text, turn integer, role text, client_message_id text)"
        )
        db.executemany(
            "insert into messages values (?, ?, ?, ?, ?)", [(100 + t, CONVERSATION, t, r, m) for t, r, m in rows]
        )
    return path


def traffic_of(*messages: tuple[str, int | None]) -> Traffic:
    """What the customer sent, in order: (client_message_id, the reply id it got or None)."""
    sent = [SentMessage(CONVERSATION, mid, "text", attempts=1, reply_id=reply) for mid, reply in messages]
    return Traffic(conversations={CONVERSATION: sent})


def test_a_clean_run_has_nothing_to_report(tmp_path):
    rows = [(0, "customer", "a"), (1, "bot", None), (2, "customer", "b"), (3, "bot", None)]
    audit = audit_store(store_with(tmp_path / "s.db", rows), traffic_of(("a", 101), ("b", 103)))
    assert audit.clean and audit.examples == ()
    assert (audit.sent, audit.answered, audit.stored) == (2, 2, 2)


def test_an_answered_message_missing_or_stored_with_another_reply_is_lost(tmp_path):
    store = store_with(tmp_path / "s.db", [(0, "customer", "a"), (1, "bot", None)])
    audit = audit_store(store, traffic_of(("a", 999), ("b", 555)))
    assert audit.lost == 2 and not audit.clean
    assert any("b answered 555, stored None" in e for e in audit.examples)


def test_a_message_stored_twice_is_doubled(tmp_path):
    rows = [(0, "customer", "a"), (1, "bot", None), (2, "customer", "a"), (3, "bot", None)]
    audit = audit_store(store_with(tmp_path / "s.db", rows), traffic_of(("a", 101)))
    assert audit.doubled == 1 and audit.lost == 0


def test_a_customer_message_without_its_reply_is_half_written(tmp_path):
    rows = [(0, "customer", "a"), (1, "bot", None), (2, "customer", "b")]
    audit = audit_store(store_with(tmp_path / "s.db", rows), traffic_of(("a", 101), ("b", None)))
    assert audit.half_written == 1
    # the customer never got an answer to "b", so it is not lost; it is stored unanswered
    assert audit.lost == 0


def test_a_message_no_customer_sent_is_stray(tmp_path):
    rows = [(0, "customer", "a"), (1, "bot", None), (2, "customer", None), (3, "bot", None)]
    audit = audit_store(store_with(tmp_path / "s.db", rows), traffic_of(("a", 101)))
    assert audit.stray == 1 and audit.half_written == 0


def test_messages_stored_in_another_order_than_sent_are_out_of_order(tmp_path):
    rows = [(0, "customer", "b"), (1, "bot", None), (2, "customer", "a"), (3, "bot", None)]
    audit = audit_store(store_with(tmp_path / "s.db", rows), traffic_of(("a", 103), ("b", 101)))
    assert audit.out_of_order == 1 and audit.lost == 0


def test_a_turn_stored_though_its_customer_gave_up_is_counted_apart(tmp_path):
    store = store_with(tmp_path / "s.db", [(0, "customer", "a"), (1, "bot", None)])
    audit = audit_store(store, traffic_of(("a", None)))
    assert audit.clean and audit.stored_unanswered == 1 and audit.answered == 0
