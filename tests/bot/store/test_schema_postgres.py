"""The schema on PostgreSQL (a real server, tests/postgres.py): the same migration names as
SQLite, a later migration that fails half way leaves the database as it was and a rerun
completes it, two processes upgrading at once apply it once, and a database of something
else is refused before anything is written."""

from __future__ import annotations

import threading

import psycopg
import pytest
from sqlite_utils import Migrations

from bot.store import SCHEMA_NAME, ConversationStore, NotAStoreError, schema_postgres
from bot.store.database import PostgresDatabase
from bot.store.schema import apply_pending, known_migrations, migrations, schema_state
from tests.bot.store.helpers import turn

pytestmark = pytest.mark.slow


def _released_and(*extra) -> Migrations:
    released = Migrations(SCHEMA_NAME)
    for migration in [m.fn for m in migrations.pending(_empty_sqlite())] + list(extra):
        released()(migration)
    return released


def _empty_sqlite():
    from sqlite_utils import Database

    return Database(memory=True)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as db:
        return {name for (name,) in db.execute("select tablename from pg_tables where schemaname = 'public'")}


def m008_ratings_archive(db) -> None:  # the SQLite side of the next release's migration
    db.execute("create table ratings_archive (id integer primary key, rating text)")


def test_an_empty_database_gets_every_released_migration_by_name(postgres_url):
    with ConversationStore(postgres_url) as store:
        assert store.migrations_applied == known_migrations()
        assert schema_state(store.db).pending == []
        turn(store, store.create_conversation(conversation_id="c1"))
    with ConversationStore(postgres_url) as again:  # nothing applied twice
        assert again.migrations_applied == [] and len(again.messages("c1")) == 2


def test_a_later_migration_that_fails_half_way_leaves_the_database_as_it_was(postgres_url, monkeypatch):
    with ConversationStore(postgres_url) as store:
        turn(store, store.create_conversation(conversation_id="c1"))

    def broken(db) -> None:
        db.execute("create table ratings_archive (id bigint primary key, rating text)")
        db.execute("insert into ratings_archive select id, rating from feedback")
        raise RuntimeError("disk full, say, half way through")

    monkeypatch.setitem(schema_postgres.LATER, "m008_ratings_archive", broken)
    db = PostgresDatabase(postgres_url).connect()
    try:
        with pytest.raises(RuntimeError, match="half way"):
            apply_pending(db, db.where, _released_and(m008_ratings_archive))
        assert "ratings_archive" not in _tables(postgres_url)
        assert schema_state(db, _released_and(m008_ratings_archive)).pending == ["m008_ratings_archive"]

        def fixed(db) -> None:
            db.execute("create table ratings_archive (id bigint primary key, rating text)")

        monkeypatch.setitem(schema_postgres.LATER, "m008_ratings_archive", fixed)
        assert apply_pending(db, db.where, _released_and(m008_ratings_archive)) == ["m008_ratings_archive"]
        assert "ratings_archive" in _tables(postgres_url)
    finally:
        db.close()


def test_a_migration_without_postgres_statements_is_refused_by_name(postgres_url):
    db = PostgresDatabase(postgres_url).connect()
    try:
        with pytest.raises(Exception, match="m008_ratings_archive have no PostgreSQL statements"):
            apply_pending(db, db.where, _released_and(m008_ratings_archive))
        assert "conversations" not in _tables(postgres_url)  # nothing of the release either
    finally:
        db.close()


def test_two_processes_upgrading_at_once_apply_the_schema_once(postgres_url):
    outcomes: list[list[str]] = []
    start = threading.Barrier(2)

    def upgrade() -> None:
        db = PostgresDatabase(postgres_url).connect()
        try:
            start.wait()
            outcomes.append(apply_pending(db, db.where))
        finally:
            db.close()

    threads = [threading.Thread(target=upgrade) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes, key=len) == [[], known_migrations()]


def test_a_database_of_something_else_is_refused_before_anything_is_written(postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("create table invoices (id bigint primary key)")
    with pytest.raises(NotAStoreError, match="PostgreSQL database with other tables \\(invoices\\)"):
        ConversationStore(postgres_url).open()
    assert _tables(postgres_url) == {"invoices"}
