"""Privacy requests through the installed CLI: `csbot forget` erases a customer's
conversations from the store and from the training pairs built from them; `csbot purge`
erases idle ones. On a private copy of the demo workspace."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from bot.store import ConversationStore
from tests.helpers import last_json, run_csbot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EMAIL = "dana.lee@example.org"


@pytest.fixture
def workspace(demo_workspace, tmp_path):
    target = tmp_path / "ws"
    shutil.copytree(demo_workspace, target, ignore=shutil.ignore_patterns("store.db*"))
    return target


def _ask(workspace, text, conversation=None):
    args = ["ask", text] + (["--conversation", conversation] if conversation else [])
    return last_json(run_csbot(*args, workspace=workspace).stdout)["conversation_id"]


def _pair_conversations(pairs_dir) -> set[str]:
    found = set()
    for path in pairs_dir.glob("*.jsonl"):
        found |= {json.loads(line)["conversation_id"] for line in path.read_text().splitlines() if line.strip()}
    return found


def test_forget_by_email_erases_the_store_rows_and_the_pairs_and_logs_no_email(workspace):
    mine = _ask(workspace, f"hi, my email is {EMAIL}, I need help with a refund")
    theirs = _ask(workspace, "hi, I need help with a refund")
    with ConversationStore(workspace / "store.db") as store:  # agents answered both: trusted pair targets
        for cid in (mine, theirs):
            store.record_agent_message(cid, "I have started your refund; it takes 5-7 business days to appear.")
    pairs_dir = workspace / "finetune" / "rounds" / "r1" / "pairs"
    run_csbot("finetune", "pairs", "--out", str(pairs_dir), "--min-pairs", "1", workspace=workspace)
    assert {mine, theirs} <= _pair_conversations(pairs_dir)

    proc = run_csbot("forget", "--email", EMAIL, workspace=workspace)
    report = last_json(proc.stdout)
    assert report["conversations"] == [mine] and report["pairs"] >= 1
    assert report["rows"]["messages"] == 3 and report["rows"]["conversations"] == 1
    assert EMAIL not in proc.stdout + proc.stderr
    with sqlite3.connect(workspace / "store.db") as db:
        assert db.execute("select count(*) from messages where conversation_id = ?", [mine]).fetchone() == (0,)
        assert db.execute("select count(*) from messages where text like ?", [f"%{EMAIL}%"]).fetchone() == (0,)
        assert db.execute("select count(*) from messages where conversation_id = ?", [theirs]).fetchone() == (3,)
    assert mine not in _pair_conversations(pairs_dir) and theirs in _pair_conversations(pairs_dir)

    again = last_json(run_csbot("forget", "--email", EMAIL, workspace=workspace).stdout)
    assert again["conversations"] == [] and again["pairs"] == 0


def test_forget_needs_exactly_one_of_its_options_and_a_real_email(workspace):
    for args in ((), ("--email", EMAIL, "--conversation", "x"), ("--email", "not-an-email")):
        proc = run_csbot("forget", *args, workspace=workspace, check=False)
        assert proc.returncode == 1 and "error:" in proc.stderr, args


def test_purge_erases_only_conversations_idle_past_the_limit(workspace):
    old = _ask(workspace, "hello")
    recent = _ask(workspace, "hello again")
    with sqlite3.connect(workspace / "store.db") as db:
        db.execute("update conversations set updated_at = '2020-01-01T00:00:00.000+00:00' where id = ?", [old])
    report = last_json(run_csbot("purge", "--older-than-days", "30", workspace=workspace).stdout)
    assert report["conversations"] == [old]
    with ConversationStore(workspace / "store.db") as store:
        assert not store.conversation_exists(old) and store.conversation_exists(recent)
