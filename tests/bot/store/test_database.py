"""The database layer alone: SQLite's placeholders rewritten for psycopg (quoted text left
alone), which targets are database URLs, URLs shown without their password, and the same
typed errors from both back ends."""

from __future__ import annotations

import pytest

from bot.store import ConversationStore
from bot.store.database import PostgresDatabase, is_database_url, postgres_sql, redacted_url
from bot.store.errors import ConstraintError, StoreUnavailableError


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        ("select * from t where a = ? and b = ?", "select * from t where a = %s and b = %s"),
        ("select * from t where a >= :start and a < :end", "select * from t where a >= %(start)s and a < %(end)s"),
        ("select '?', ':x', 'it''s ?' from t where a = ?", "select '?', ':x', 'it''s ?' from t where a = %s"),
        ("select * from t where a like :p escape '\\'", "select * from t where a like %(p)s escape '\\'"),
        ("select 5 % 2, '100%' from t where a = ?", "select 5 %% 2, '100%%' from t where a = %s"),
        ('select "odd?name" from t where a = ?', 'select "odd?name" from t where a = %s'),
        ("select a::text from t where b = ?", "select a::text from t where b = %s"),
    ],
)
def test_placeholders_are_rewritten_for_psycopg_and_quoted_text_is_left_alone(sqlite, postgres):
    assert postgres_sql(sqlite) == postgres


def test_only_postgresql_urls_are_database_targets_and_their_passwords_are_hidden(tmp_path):
    assert is_database_url("postgresql://u@h/db") and is_database_url("postgres://u@h/db")
    assert not is_database_url("store.db") and not is_database_url(tmp_path / "store.db")
    assert not is_database_url("sqlite:///store.db")
    assert redacted_url("postgresql://csbot:s3cret@10.0.0.5:5432/csbot") == "postgresql://csbot:***@10.0.0.5:5432/csbot"
    assert redacted_url("postgresql://csbot@10.0.0.5/csbot") == "postgresql://csbot@10.0.0.5/csbot"


def test_a_server_that_does_not_answer_is_unavailable_and_names_no_password():
    db = PostgresDatabase("postgresql://csbot:s3cret@127.0.0.1:1/csbot")
    with pytest.raises(StoreUnavailableError) as caught:
        db.connect()
    assert "s3cret" not in str(caught.value) and "CSBOT_DATABASE_URL" in str(caught.value)


def test_a_broken_constraint_is_the_same_error_on_sqlite(tmp_path):
    with ConversationStore(tmp_path / "store.db") as store:
        store.create_conversation(conversation_id="c1")
        with pytest.raises(ConstraintError, match="UNIQUE"):
            store.create_conversation(conversation_id="c1")


@pytest.mark.slow
def test_a_broken_constraint_is_the_same_error_on_postgres(postgres_url):
    with ConversationStore(postgres_url) as store:
        store.create_conversation(conversation_id="c1")
        with pytest.raises(ConstraintError, match="conversations_pkey"):
            store.create_conversation(conversation_id="c1")
        assert store.conversation_exists("c1")  # the connection still works after the refusal
