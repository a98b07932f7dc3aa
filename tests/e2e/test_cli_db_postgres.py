"""The CLI on a store in PostgreSQL (CSBOT_DATABASE_URL), against a real server
(tests/postgres.py): conversations moved from SQLite to PostgreSQL and back unchanged, a
PostgreSQL store a newer csbot migrated refused in one line, and a database that does not
answer or a URL that is no PostgreSQL one refused in one line by `csbot db` and by
`csbot serve`, before its port opens, never with a traceback."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.store import ConversationStore, MessageRecord
from bot.store.schema import known_migrations
from tests.bot.store.helpers import turn
from tests.helpers import last_json

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _csbot(*args: str, url: str | None):
    env = {"CSBOT_DATABASE_URL": url} if url is not None else {}
    return CliRunner().invoke(app, list(args), env=env)


def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    return " ".join(result.stderr.split())


def test_conversations_move_from_sqlite_to_postgres_and_back_the_same(tmp_path: Path, postgres_url: str):
    ws = tmp_path / "ws"
    ws.mkdir()
    with ConversationStore(ws / "store.db") as store:
        cid = store.create_conversation(channel="web", conversation_id="web-1")
        bot_id = turn(store, cid, "where is my order", "Could you tell me your order number?")
        store.add_feedback(bot_id, "up")
        store.add_csat(cid, 4, "quick")
        store.record_agent_message(cid, "It ships tomorrow.")
        store.record_customer_message(cid, MessageRecord("customer", "thanks!"))

    # a password in the URL (trust authentication ignores it) is never shown
    postgres_url = postgres_url.replace("postgres@", "postgres:pw-hunter2@", 1)
    upgraded = _csbot("db", "upgrade", "--workspace", str(ws), url=postgres_url)
    assert upgraded.exit_code == 0, upgraded.output
    assert (last_json(upgraded.stdout)["applied_now"], last_json(upgraded.stdout)["pending"]) == (
        known_migrations(),
        [],
    )
    assert ":***@" in last_json(upgraded.stdout)["store"] and "hunter2" not in upgraded.output

    out, back = tmp_path / "from-sqlite.jsonl", tmp_path / "from-postgres.jsonl"
    assert _csbot("db", "export", str(out), "--workspace", str(ws), url=None).exit_code == 0
    imported = _csbot("db", "import", str(out), "--workspace", str(ws), url=postgres_url)
    assert imported.exit_code == 0, imported.output
    assert (last_json(imported.stdout)["conversations"], last_json(imported.stdout)["messages"]) == (1, 4)
    exported = _csbot("db", "export", str(back), "--workspace", str(ws), url=postgres_url)
    assert exported.exit_code == 0, exported.output
    assert back.read_text() == out.read_text()
    # the PostgreSQL store is a store like the other: the conversation reads back whole
    with ConversationStore(postgres_url) as store:
        assert [m["role"] for m in store.messages("web-1")] == ["customer", "bot", "agent", "customer"]
        assert store.csat("web-1")[0]["score"] == 4
    # a second import of the same conversation is refused whole, naming the line
    again = _csbot("db", "import", str(out), "--workspace", str(ws), url=postgres_url)
    assert "line 1" in _one_error_line(again) and "already in the store" in again.stderr


def test_a_postgres_store_migrated_by_a_newer_csbot_is_refused_in_one_line(
    tmp_path: Path, postgres_url: str, demo_workspace: Path
):
    ws = tmp_path / "ws"
    ws.mkdir()
    ConversationStore(postgres_url).open().close()
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(
            "insert into csbot_migrations (migration_set, name, applied_at) "
            "values ('csbot', 'm042_from_the_future', '2030-01-01')"
        )
    line = _one_error_line(_csbot("db", "upgrade", "--workspace", str(ws), url=postgres_url))
    assert "m042_from_the_future" in line and "upgrade csbot" in line
    status = _csbot("db", "status", "--workspace", str(ws), url=postgres_url)
    assert status.exit_code == 0 and last_json(status.stdout)["unknown"] == ["m042_from_the_future"]
    # a replica of this (older) csbot refuses to serve it, before its port opens
    line = _one_error_line(_csbot("serve", "--workspace", str(demo_workspace), "--port", "1", url=postgres_url))
    assert "m042_from_the_future" in line


def test_a_database_that_does_not_answer_or_is_not_postgres_is_one_line(tmp_path: Path, demo_workspace: Path):
    down = "postgresql://csbot:hunter2@127.0.0.1:1/csbot"  # nothing listens on port 1
    for args in (("db", "status"), ("db", "upgrade"), ("serve", "--port", "1")):
        line = _one_error_line(_csbot(*args, "--workspace", str(demo_workspace), url=down))
        assert "cannot use store postgresql://csbot:***@127.0.0.1:1/csbot" in line, args
        assert "hunter2" not in line and "CSBOT_DATABASE_URL" in line, args
    line = _one_error_line(_csbot("serve", "--workspace", str(demo_workspace), url="mysql://u:hunter2@h/db"))
    assert "must start with postgresql://" in line and "hunter2" not in line
