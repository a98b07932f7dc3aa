"""The throwaway PostgreSQL server of tests/postgres.py, against itself: a real server that
stores and answers, databases that do not see each other, and a restart or a crash that
breaks the open connections but keeps the data and the URL."""

from __future__ import annotations

import psycopg
import pytest

from tests.postgres import PostgresServer

pytestmark = pytest.mark.slow


def test_a_fresh_database_stores_and_answers(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        conn.execute("CREATE TABLE turns (id serial PRIMARY KEY, text text NOT NULL)")
        conn.execute("INSERT INTO turns (text) VALUES (%s), (%s)", ("hello", "où est ma commande ?"))
        conn.commit()
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT id, text FROM turns ORDER BY id").fetchall()
    assert rows == [(1, "hello"), (2, "où est ma commande ?")]


def test_the_server_listens_on_127_0_0_1_with_the_settings_it_was_given(postgres_server, postgres_url):
    assert postgres_url.startswith(f"postgresql://postgres@127.0.0.1:{postgres_server.port}/csbot_test_")
    with psycopg.connect(postgres_url) as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('listen_addresses', 'unix_socket_directories', 'max_connections', 'fsync')"
            ).fetchall()
        )
    assert settings == {
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(postgres_server.base_dir),
        "max_connections": "200",
        "fsync": "off",
    }


def test_two_created_databases_are_independent(postgres_server):
    first, second = postgres_server.create_database(), postgres_server.create_database()
    try:
        assert first != second
        with psycopg.connect(first) as conn:
            conn.execute("CREATE TABLE only_here (n int)")
            conn.execute("INSERT INTO only_here VALUES (1)")
        with psycopg.connect(second) as conn:
            conn.execute("CREATE TABLE only_here (n int)")  # the same name, no clash
            assert conn.execute("SELECT count(*) FROM only_here").fetchone() == (0,)
        with psycopg.connect(first) as conn:
            assert conn.execute("SELECT n FROM only_here").fetchall() == [(1,)]
    finally:
        postgres_server.drop_database(first)
        postgres_server.drop_database(second)
    with psycopg.connect(postgres_server.url()) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert not {first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]} & names


def test_restart_keeps_the_data_and_the_url_and_breaks_open_connections(postgres_server, postgres_url):
    port = postgres_server.port
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (7)")
    old = psycopg.connect(postgres_url, autocommit=True)
    try:
        assert old.execute("SELECT 1").fetchone() == (1,)
        postgres_server.restart()
        assert postgres_server.running and postgres_server.port == port
        with pytest.raises(psycopg.OperationalError):
            old.execute("SELECT 1")
    finally:
        old.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(7,)]


def test_after_a_kill_the_server_is_down_and_starts_again_with_its_committed_data(postgres_server, postgres_url):
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        # synchronous_commit=off may lose the last commits in a crash; this one must survive
        conn.execute("SET synchronous_commit = on")
        conn.execute("INSERT INTO kept VALUES (7)")
    old = psycopg.connect(postgres_url, autocommit=True)
    try:
        postgres_server.kill()
        assert not postgres_server.running
        with pytest.raises(psycopg.OperationalError):
            old.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(postgres_url, connect_timeout=2)
    finally:
        old.close()
    postgres_server.start()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(7,)]


def test_a_server_of_its_own_runs_as_a_context_and_leaves_no_directory(postgres_server):
    with PostgresServer(postgres_server.bin_dir) as server:
        base_dir = server.base_dir
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    assert not server.running
    assert not base_dir.exists()
