"""`csbot db status | upgrade | export | import` through the installed CLI (and, for the
mistakes, through Typer's runner): conversations moved from one workspace's store to
another's, a store a newer csbot migrated refused in one line, wrong paths and files that
are no store refused in one line, never a traceback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.store import ConversationStore, MessageRecord
from bot.store.schema import known_migrations
from tests.bot.store.helpers import turn
from tests.helpers import last_json, run_csbot

pytestmark = pytest.mark.e2e


def _workspace(tmp_path: Path, name: str) -> Path:
    ws = tmp_path / name
    ws.mkdir()
    return ws


def _one_error_line(stderr: str) -> str:
    """The error edge's message: one logical line (rich may wrap it), no traceback."""
    assert "Traceback" not in stderr
    assert stderr.startswith("error: ")
    return " ".join(stderr.split())


def _db(*args: str):
    return CliRunner().invoke(app, ["db", *args])


@pytest.mark.slow  # four csbot processes
def test_conversations_move_between_workspaces_and_come_back_the_same(tmp_path):
    source, target = _workspace(tmp_path, "source"), _workspace(tmp_path, "target")
    upgraded = last_json(run_csbot("db", "upgrade", workspace=source).stdout)
    assert upgraded["applied_now"] == known_migrations() and upgraded["pending"] == []
    with ConversationStore(source / "store.db") as store:
        cid = store.create_conversation(channel="web", conversation_id="web-1")
        bot_id = turn(store, cid, "where is my order", "Could you tell me your order number?")
        store.add_feedback(bot_id, "up")
        store.record_agent_message(cid, "It ships tomorrow.")
        store.record_customer_message(cid, MessageRecord("customer", "thanks!"))

    exported = last_json(run_csbot("db", "export", str(tmp_path / "out.jsonl"), workspace=source).stdout)
    assert (exported["conversations"], exported["messages"]) == (1, 4)
    imported = last_json(run_csbot("db", "import", str(tmp_path / "out.jsonl"), workspace=target).stdout)
    assert (imported["conversations"], imported["messages"]) == (1, 4)
    run_csbot("db", "export", str(tmp_path / "again.jsonl"), workspace=target)
    assert (tmp_path / "again.jsonl").read_text() == (tmp_path / "out.jsonl").read_text()
    status = _db("status", "--workspace", str(target))
    assert status.exit_code == 0, status.stderr
    assert (last_json(status.stdout)["applied"], last_json(status.stdout)["pending"]) == (known_migrations(), [])


@pytest.mark.slow  # a csbot process
def test_a_store_migrated_by_a_newer_csbot_is_refused_in_one_line_and_reported_by_status(tmp_path):
    ws = _workspace(tmp_path, "ws")
    ConversationStore(ws / "store.db").open().close()
    with sqlite3.connect(ws / "store.db") as db:
        db.execute(
            "insert into _sqlite_migrations (migration_set, name, applied_at) "
            "values ('csbot', 'm042_from_the_future', '2030-01-01')"
        )
    refused = run_csbot("db", "upgrade", workspace=ws, check=False)
    assert refused.returncode == 1
    line = _one_error_line(refused.stderr)
    assert "m042_from_the_future" in line and "upgrade csbot" in line
    status = _db("status", "--workspace", str(ws))  # reported, exit 0: saying so is what status is for
    assert status.exit_code == 0 and last_json(status.stdout)["unknown"] == ["m042_from_the_future"]
    assert "newer than this csbot" in " ".join(status.stderr.split())


def test_a_workspace_that_does_not_exist_is_one_line_for_every_command(tmp_path):
    missing = str(tmp_path / "nowhere")
    for args in (
        ("status",),
        ("upgrade",),
        ("export", str(tmp_path / "o.jsonl")),
        ("import", str(tmp_path / "i.jsonl")),
    ):
        result = _db(*args, "--workspace", missing)
        assert result.exit_code == 1, args
        assert "does not exist" in _one_error_line(result.stderr), args
    assert not (tmp_path / "nowhere").exists()


def test_a_store_file_that_is_not_a_store_is_one_line(tmp_path):
    ws = _workspace(tmp_path, "ws")
    (ws / "store.db").write_text("just some text\n" * 100)
    for args in (("status",), ("upgrade",), ("export", str(tmp_path / "o.jsonl"))):
        result = _db(*args, "--workspace", str(ws))
        assert result.exit_code == 1, args
        assert "is not a csbot store" in _one_error_line(result.stderr), args
    assert not (tmp_path / "o.jsonl").exists()


def test_export_from_a_workspace_without_a_store_and_a_bad_import_file_are_one_line(tmp_path):
    ws = _workspace(tmp_path, "ws")
    result = _db("export", str(tmp_path / "o.jsonl"), "--workspace", str(ws))
    assert result.exit_code == 1 and "has no conversation store" in _one_error_line(result.stderr)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "a", "turns": [{"role": "customer", "text": "hi"}]}) + "\n{")
    result = _db("import", str(tmp_path / "bad.jsonl"), "--workspace", str(ws))
    assert result.exit_code == 1
    assert "line 2: invalid JSON" in _one_error_line(result.stderr)
    with ConversationStore(ws / "store.db") as store:
        assert not store.conversation_exists("a")
