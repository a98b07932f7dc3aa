"""Replicas of one workspace registering their settings in a real SQLite store file:
a newcomer with other settings is refused naming each difference, equal settings are
accepted, dead replicas do not bind, and two processes racing cannot both register."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from bot.settings import CsbotSettings
from bot.store import ConversationStore
from bot.store.database import SqliteDatabase
from bot.store.errors import ReplicaSettingsConflictError, SqliteOnSeveralMachinesError
from bot.store.replicas import (
    SQLITE_MACHINE_KEY,
    ReplicaHeartbeat,
    heartbeat,
    live_replicas,
    machine_id,
    new_replica_id,
    register_replica,
    replica_settings,
    unregister_replica,
)
from bot.workspace import WORKSPACE_FORMAT
from tests.helpers import REPO

BASE = {"server.conversation_lock": "process", "embedder.backend": "torch", "index.kind": "auto"}
LIVE_S = 30.0
PASSWORD = "s3cret-redis-password"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    ConversationStore(tmp_path / "store.db").open().close()  # created and migrated as serve does
    with Database(tmp_path / "store.db") as database:
        yield SqliteDatabase(database, str(tmp_path / "store.db"))


def _rows(db: SqliteDatabase) -> list[dict]:
    return list(db.query("select * from replicas order by id"))


def test_equal_settings_are_accepted_and_each_replica_has_its_row(db):
    register_replica(db, "a", BASE, live_seconds=LIVE_S, host="h1", pid=11)
    register_replica(db, "b", dict(BASE), live_seconds=LIVE_S, host="h2", pid=22)
    rows = _rows(db)
    assert [(r["id"], r["host"], r["pid"]) for r in rows] == [("a", "h1", 11), ("b", "h2", 22)]
    assert all(json.loads(r["settings"]) == BASE for r in rows)
    assert [r.id for r in live_replicas(db, LIVE_S)] == ["a", "b"]


def test_a_conflict_names_every_differing_key_both_values_and_the_other_replica(db):
    register_replica(db, "a", BASE, live_seconds=LIVE_S, host="host-one", pid=4242)
    mine = {**BASE, "server.conversation_lock": "file", "embedder.backend": "onnx-int8"}
    with pytest.raises(ReplicaSettingsConflictError) as caught:
        register_replica(db, "b", mine, live_seconds=LIVE_S, host="host-two", pid=7)
    message = str(caught.value)
    assert caught.value.differences == {
        "embedder.backend": ("onnx-int8", "torch"),
        "server.conversation_lock": ("file", "process"),
    }
    for part in ("server.conversation_lock is 'file' here but 'process' there", "'onnx-int8'", "pid 4242 on host-one"):
        assert part in message, message
    assert "index.kind" not in message  # equal keys are not listed
    assert "same settings" in message and "stop them all first" in message
    assert [r["id"] for r in _rows(db)] == ["a"]  # nothing written for the refused one


def test_a_stale_row_is_ignored_and_deleted(db):
    register_replica(db, "dead", {**BASE, "server.conversation_lock": "file"}, live_seconds=LIVE_S)
    db.execute("update replicas set heartbeat_at = '2000-01-01T00:00:00.000000Z' where id = 'dead'")
    db.conn.commit()
    assert live_replicas(db, LIVE_S) == []
    register_replica(db, "new", BASE, live_seconds=LIVE_S)
    assert [r["id"] for r in _rows(db)] == ["new"]


def test_heartbeat_refreshes_and_unregister_removes_the_row(db):
    register_replica(db, "a", BASE, live_seconds=LIVE_S)
    db.execute("update replicas set heartbeat_at = '2000-01-01T00:00:00.000000Z'")
    db.conn.commit()
    assert heartbeat(db, "a") is True
    assert [r.id for r in live_replicas(db, LIVE_S)] == ["a"]
    unregister_replica(db, "a")
    assert _rows(db) == [] and heartbeat(db, "a") is False
    # with it gone, other settings may start
    register_replica(db, "b", {**BASE, "server.conversation_lock": "file"}, live_seconds=LIVE_S)


def test_the_heartbeat_thread_keeps_the_row_fresh_and_removes_it_on_exit(db, tmp_path):
    register_replica(db, "a", BASE, live_seconds=3.0)
    before = _rows(db)[0]["heartbeat_at"]
    with ReplicaHeartbeat(tmp_path / "store.db", "a", BASE, live_seconds=3.0):
        deadline = time.monotonic() + 10
        while _rows(db)[0]["heartbeat_at"] == before:
            assert time.monotonic() < deadline, "no heartbeat within 10 s at a 1 s period"
            time.sleep(0.1)
    assert _rows(db) == []


RACER = """
import sys, time
from pathlib import Path
from sqlite_utils import Database
from bot.store.database import SqliteDatabase
from bot.store.errors import ReplicaSettingsConflictError, SqliteOnSeveralMachinesError
from bot.store.replicas import register_replica
store, go, lock = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with Database(store) as raw:
    raw.execute("PRAGMA busy_timeout = 5000")
    db = SqliteDatabase(raw, str(store))
    while not go.exists():
        time.sleep(0.005)
    try:
        register_replica(db, "racer-" + lock, {"server.conversation_lock": lock}, live_seconds=30)
    except ReplicaSettingsConflictError as e:
        print("refused", e)
    else:
        print("registered")
"""


def test_two_processes_registering_conflicting_settings_at_once_exactly_one_wins(db, tmp_path):
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path / "store.db"), str(go), lock],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for lock in ("file", "process")
    ]
    time.sleep(1.0)  # both have imported and wait for the signal
    go.touch()
    outcomes = [racer.communicate(timeout=60) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), outcomes
    said = sorted(out.split()[0] for out, _ in outcomes)
    assert said == ["refused", "registered"], outcomes
    winner = next(lock for lock, (out, _) in zip(("file", "process"), outcomes, strict=True) if out == "registered\n")
    assert [r["id"] for r in _rows(db)] == [f"racer-{winner}"]


def test_the_replica_settings_name_what_must_agree_and_hold_no_redis_password(tmp_path):
    workspace = tmp_path / "ws"  # what replica_settings reads of a build: its manifest
    workspace.mkdir()
    manifest = {"format": WORKSPACE_FORMAT, "embedder_id": "all-MiniLM-L6-v2@0123456789abcdef"}
    (workspace / "workspace.json").write_text(json.dumps(manifest))
    url = f"redis://:{PASSWORD}@10.0.0.7:6379/0"
    settings = CsbotSettings.from_env(workspace, env={"CSBOT_REDIS_URL": url})
    mapping = replica_settings(settings)
    assert mapping["server.conversation_lock"] == "redis"  # auto, resolved
    assert mapping["server.redis"] == "true"
    assert not any(key.startswith("store.") for key in mapping)  # the migrations guard the schema
    assert mapping["embedder.backend"] == "torch" and mapping["embedder.fingerprint"].count("@") == 1
    assert mapping["workspace.embedder_id"] == manifest["embedder_id"]
    for per_replica in ("server.host", "server.port", "server.workers", "index.faiss_threads"):
        assert per_replica not in mapping
    # another password on the same Redis is the same Redis; another host is not
    same = replica_settings(CsbotSettings.from_env(workspace, env={"CSBOT_REDIS_URL": "redis://:x@10.0.0.7:6379/0"}))
    other = replica_settings(CsbotSettings.from_env(workspace, env={"CSBOT_REDIS_URL": "redis://10.0.0.8:6379/0"}))
    assert same["server.redis_url_sha256"] == mapping["server.redis_url_sha256"] != other["server.redis_url_sha256"]

    store = tmp_path / "store.db"
    ConversationStore(store).open().close()
    with ConversationStore(store) as opened:
        db = opened.db
        register_replica(db, new_replica_id(), mapping, live_seconds=LIVE_S)
        with pytest.raises(ReplicaSettingsConflictError) as caught:
            register_replica(db, new_replica_id(), other, live_seconds=LIVE_S)
    assert "server.redis_url_sha256" in str(caught.value) and PASSWORD not in str(caught.value)
    with sqlite3.connect(store) as raw:
        dumped = "\n".join(raw.iterdump())
    assert "server.redis_url_sha256" in dumped and PASSWORD not in dumped


def test_replicas_running_the_embedder_on_torch_onnx_or_auto_agree_and_int8_does_not(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "workspace.json").write_text(json.dumps({"format": WORKSPACE_FORMAT, "embedder_id": "m@0123"}))

    def recorded(backend: str) -> str:
        env = {"CSBOT_EMBEDDER__BACKEND": backend}
        return replica_settings(CsbotSettings.from_env(workspace, env=env))["embedder.backend"]

    # the same vectors: a rolling change of backend (or from a release that recorded
    # "torch") is not a conflict
    assert recorded("auto") == recorded("onnx") == recorded("torch") == "torch"
    assert recorded("onnx-int8") == "onnx-int8"


def test_a_sqlite_store_serves_the_replicas_of_one_machine_and_refuses_another_machine(db):
    here = {**BASE, SQLITE_MACHINE_KEY: machine_id()}
    register_replica(db, "a", here, live_seconds=LIVE_S, host="web-1", pid=11)
    # another container of the same machine: its own hostname, the same kernel
    register_replica(db, "b", dict(here), live_seconds=LIVE_S, host="web-2", pid=22)
    elsewhere = {**BASE, SQLITE_MACHINE_KEY: "boot:0f3e-another-machine"}
    with pytest.raises(SqliteOnSeveralMachinesError) as caught:
        register_replica(db, "c", elsewhere, live_seconds=LIVE_S, host="web-3", pid=33)
    message = str(caught.value)
    assert "replica a (pid 11 on web-1)" in message and "CSBOT_DATABASE_URL=postgresql://" in message
    assert [r.id for r in live_replicas(db, LIVE_S)] == ["a", "b"]  # nothing written for c


def test_the_machine_is_a_replica_setting_of_sqlite_stores_only(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "workspace.json").write_text(json.dumps({"format": WORKSPACE_FORMAT, "embedder_id": "m@1"}))
    on_sqlite = replica_settings(CsbotSettings.from_env(workspace, env={}))
    assert on_sqlite[SQLITE_MACHINE_KEY] == machine_id() and machine_id().startswith(("boot:", "host:"))
    on_postgres = replica_settings(
        CsbotSettings.from_env(workspace, env={"CSBOT_DATABASE_URL": "postgresql://csbot@db.internal/csbot"})
    )
    assert SQLITE_MACHINE_KEY not in on_postgres
