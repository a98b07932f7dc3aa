"""Replicas of one workspace must agree on their settings: a real `csbot serve` runs, a
second one started with another conversation lock is refused before its port opens (exit
code 1, one line naming the setting and both values, no traceback), and one started with
the same settings serves beside it. A clean shutdown removes each replica's row."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from tests.serving import SHARED_SECRET, ServeProcess, copy_workspace, log_tail, quiet_serve_env, start_serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _wait_listening(server: ServeProcess, timeout: float = 120.0) -> None:
    """Until the port answers (/readyz 503 while the models load, or 200): registered, and
    serving; the models need not be loaded for what this test shows."""
    deadline = time.monotonic() + timeout
    while server.readiness() is None:
        assert server.running, log_tail(server.log_path)
        assert time.monotonic() < deadline, f"{server.name} not listening after {timeout:g} s"
        time.sleep(0.2)


def _replica_rows(store) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        return db.execute("select id, settings from replicas order by id").fetchall()


def test_a_replica_with_another_conversation_lock_is_refused_and_one_with_the_same_settings_serves(
    demo_workspace, tmp_path
):
    workspace = copy_workspace(demo_workspace, tmp_path / "ws")
    env = quiet_serve_env(CSBOT_SECRET_KEY=SHARED_SECRET, CSBOT_TORCH_THREADS="1")  # auto lock: process
    first = start_serve(workspace, tmp_path / "first.log", name="first", env=env)
    twin = conflicting = None
    try:
        _wait_listening(first)
        # the same settings, and another lock, started together: only the lock is refused
        twin = start_serve(workspace, tmp_path / "twin.log", name="twin", env=env)
        conflicting = start_serve(
            workspace,
            tmp_path / "conflicting.log",
            name="conflicting",
            env={**env, "CSBOT_CONVERSATION_LOCK": "file"},
        )
        status = conflicting.wait_exit(timeout=120)
        log = log_tail(conflicting.log_path)
        assert status == 1, log
        errors = [line for line in log.splitlines() if "error:" in line]
        assert len(errors) == 1, log
        assert "server.conversation_lock is 'file' here but 'process' there" in errors[0], log
        assert "Traceback" not in log, log
        assert conflicting.readiness() is None  # its port never opened

        _wait_listening(twin)
        assert first.running and len(_replica_rows(workspace / "store.db")) == 2
    finally:
        for server in (conflicting, twin, first):
            if server is not None:
                server.stop()
    for server in (first, twin):
        assert "Traceback" not in server.log_path.read_text(errors="replace"), log_tail(server.log_path)
    assert _replica_rows(workspace / "store.db") == []  # clean shutdowns unregistered both


def test_a_replica_on_another_machine_than_the_running_one_is_refused_on_a_sqlite_store(demo_workspace, tmp_path):
    workspace = copy_workspace(demo_workspace, tmp_path / "ws")
    env = quiet_serve_env(CSBOT_SECRET_KEY=SHARED_SECRET, CSBOT_TORCH_THREADS="1")
    first = start_serve(workspace, tmp_path / "first.log", name="first", env=env)
    second = None
    try:
        _wait_listening(first)
        # the running replica, as a replica on another machine sharing this workspace over a
        # network file system would find it: the same settings, another machine
        [(replica_id, settings)] = _replica_rows(workspace / "store.db")
        moved = {**json.loads(settings), "sqlite.machine": "boot:another-machine"}
        with sqlite3.connect(workspace / "store.db") as db:
            db.execute("update replicas set settings = ? where id = ?", [json.dumps(moved), replica_id])
        second = start_serve(workspace, tmp_path / "second.log", name="second", env=env)
        status = second.wait_exit(timeout=120)
        log = log_tail(second.log_path)
        assert status == 1, log
        errors = [line for line in log.splitlines() if "error:" in line]
        assert len(errors) == 1 and "Traceback" not in log, log
        assert "runs on another machine" in errors[0] and "CSBOT_DATABASE_URL=postgresql://" in errors[0], log
        assert first.running
    finally:
        for server in (second, first):
            if server is not None:
                server.stop()
