"""Three `csbot serve` replicas on one shared workspace (one SQLite store, WAL across
processes) behind HAProxy, all real processes on 127.0.0.1: the several-replicas topology
of deploy/, proven without Docker.

- load: customers talk at once over the balancer; every message a customer got an answer
  to is in the store exactly once, with that answer right after it, in the order sent,
  and the answers came from more than one replica;
- one message sent to all three replicas at the same moment is one turn, and every
  replica answers with it (what a retry that overtakes its first attempt meets);
- kill -9: one replica is killed while it holds requests; customers whose request died
  with it send the same message again (same token, same client_message_id) and are
  answered by another replica; nothing is lost, doubled or half written;
- the killed replica, started again on its port, is taken back by the balancer and answers
  its share, on the store its crash left;
- a replica started on a store that a newer csbot migrated refuses to start.

HAProxy comes from the Debian package (`apt-get install haproxy`); without it these tests
are skipped, except under CI=true, where its absence fails them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.traffic import (
    Traffic,
    assert_everyone_answered,
    audit_store,
    demo_customer_texts,
    run_customers,
    wait_until_busy,
)
from tests.helpers import REPO
from tests.serving import (
    SHARED_SECRET,
    Topology,
    copy_workspace,
    log_tail,
    quiet_serve_env,
    replicas_on_a_copy,
    require_haproxy,
    start_serve,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPLICAS = 3
CUSTOMERS = 30
TURNS = 3
VICTIM = "r2"


@pytest.fixture(scope="module")
def haproxy() -> Path:
    """HAProxy's binary; its absence skips these tests, or fails them under CI=true."""
    return require_haproxy()


@pytest.fixture(scope="module")
def replicas(haproxy, demo_workspace, tmp_path_factory) -> Iterator[Topology]:
    """Three replicas, one inference worker and one torch thread each, on one copy of the
    demo workspace (retrieval composer), behind HAProxy; started once for the module."""
    run_dir = tmp_path_factory.mktemp("replicas")
    with replicas_on_a_copy(demo_workspace, run_dir, REPLICAS, env={"CSBOT_TORCH_THREADS": "1"}) as topology:
        yield topology


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return demo_customer_texts(REPO / "data")


def test_every_message_over_the_balancer_is_stored_once_with_its_reply(replicas, texts):
    traffic = asyncio.run(run_customers(replicas.url, texts, CUSTOMERS, turns=TURNS, seed=1))

    assert_everyone_answered(traffic, CUSTOMERS * TURNS)
    assert traffic.retries == 0, f"no replica failed, yet messages were retried: {dict(traffic.failures)}"
    audit = audit_store(replicas.store_path, traffic)
    assert audit.clean, audit.examples
    assert (audit.sent, audit.answered, audit.stored) == (CUSTOMERS * TURNS,) * 3
    assert audit.stored_unanswered == 0
    # the balancer spread the customers: every answer names a replica, and several answered
    served = traffic.by_replica()
    assert set(served) <= set(replicas.replicas), served
    assert len(served) >= 2, served


def test_one_message_sent_to_every_replica_at_once_is_one_turn(replicas, texts):
    """What a retry that overtakes its first attempt looks like (the balancer's retry after
    a response timeout, a client that gave up too early): the same message reaches several
    replicas at the same moment. One takes the turn; the others answer with its reply."""
    import httpx

    opened = httpx.post(replicas.url + "/api/v1/conversations", json={"channel": "web"}, timeout=60)
    assert opened.status_code == 201, opened.text
    conversation_id, token = opened.json()["conversation_id"], opened.json()["access_token"]
    messages = [(f"all-at-once-{i}", texts[i]) for i in range(3)]

    async def send_everywhere(client_message_id: str, text: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{replica.url}/api/v1/conversations/{conversation_id}/messages",
                        json={"text": text, "client_message_id": client_message_id},
                        headers={"X-Conversation-Token": token},
                    )
                    for replica in replicas.replicas.values()
                )
            )

    for client_message_id, text in messages:
        answers = asyncio.run(send_everywhere(client_message_id, text))
        assert [a.status_code for a in answers] == [200] * REPLICAS, [a.text for a in answers]
        assert len({(a.json()["message_id"], a.json()["reply"]) for a in answers}) == 1, [a.json() for a in answers]

    with sqlite3.connect(f"file:{replicas.store_path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "select role, client_message_id from messages where conversation_id = ? order by turn", [conversation_id]
        ).fetchall()
    assert rows == [row for mid, _ in messages for row in (("customer", mid), ("bot", None))]

    # the same id with another text is a client bug, whichever replica sees it
    reused = httpx.post(
        f"{replicas.replicas['r3'].url}/api/v1/conversations/{conversation_id}/messages",
        json={"text": "something else entirely", "client_message_id": messages[0][0]},
        headers={"X-Conversation-Token": token},
        timeout=60,
    )
    assert reused.status_code == 409 and reused.json()["code"] == "client_message_id_conflict", reused.text


def test_a_replica_killed_during_load_loses_and_doubles_nothing(replicas, texts):
    victim = replicas.replicas[VICTIM]
    survivors = set(replicas.replicas) - {VICTIM}

    async def load_and_kill() -> tuple[Traffic, float]:
        load = asyncio.create_task(run_customers(replicas.url, texts, CUSTOMERS, turns=TURNS, stream=True, seed=2))
        # past its share of the conversations opened and a few turns: the kill lands mid-turn
        await wait_until_busy(replicas.balancer, VICTIM, after=CUSTOMERS // REPLICAS + 5)
        victim.kill_hard()
        killed_at = time.monotonic()
        return await load, killed_at

    traffic, killed_at = asyncio.run(load_and_kill())

    assert not victim.running
    assert_everyone_answered(traffic, CUSTOMERS * TURNS)
    audit = audit_store(replicas.store_path, traffic)
    assert audit.clean, audit.examples
    assert (audit.sent, audit.answered, audit.stored) == (CUSTOMERS * TURNS,) * 3
    # the kill hit requests under way: HAProxy sent them again elsewhere, or the clients did
    stats = replicas.balancer.server_stats()
    redone = int(stats[VICTIM]["wretr"]) + int(stats[VICTIM]["wredis"]) + traffic.retries
    assert redone > 0, (stats[VICTIM], dict(traffic.failures))
    assert stats[VICTIM]["status"].startswith("DOWN")
    # a message first sent after the kill is answered by the others only (whatever the
    # speed of the turns: a clock window after the kill can be empty when they are fast)
    later = {m.replica for m in traffic.answered() if m.first_sent_at is not None and m.first_sent_at > killed_at}
    assert later and later <= survivors, later


def test_a_killed_replica_started_again_rejoins_and_answers(replicas, texts):
    victim = replicas.replicas[VICTIM]
    victim.kill_hard()  # already dead after the test above; killed here when run alone
    replicas.balancer.wait_status({VICTIM: "DOWN"})
    env = quiet_serve_env(CSBOT_SECRET_KEY=SHARED_SECRET, CSBOT_TORCH_THREADS="1")
    restarted = start_serve(
        replicas.workspace, victim.log_path.with_name(f"{VICTIM}-restarted.log"), name=VICTIM, port=victim.port, env=env
    )
    replicas.replicas[VICTIM] = restarted  # the fixture's log check covers it
    try:
        restarted.wait_ready()
        replicas.balancer.wait_status({VICTIM: "UP"})
        traffic = asyncio.run(run_customers(replicas.url, texts, CUSTOMERS, turns=2, stream=True, seed=3))
        assert_everyone_answered(traffic, CUSTOMERS * 2)
        audit = audit_store(replicas.store_path, traffic)
        assert audit.clean, audit.examples
        assert (audit.sent, audit.answered, audit.stored) == (CUSTOMERS * 2,) * 3
        assert traffic.by_replica()[VICTIM] > 0, traffic.by_replica()
    finally:
        restarted.stop()


def future_store(workspace: Path) -> list[str]:
    """Make `workspace`'s store look as a newer csbot leaves it: this csbot's migrations and
    one it does not know. Returns the migration names recorded."""
    from bot.store import ConversationStore

    store = workspace / "store.db"
    ConversationStore(store).open().close()
    with sqlite3.connect(store) as db:
        db.execute(
            "insert into _sqlite_migrations (migration_set, name, applied_at) "
            "values ('csbot', 'm999_from_a_newer_csbot', '2099-01-01')"
        )
        return [r[0] for r in db.execute("select name from _sqlite_migrations order by rowid")]


def test_a_replica_refuses_a_store_a_newer_csbot_migrated(demo_workspace, tmp_path):
    workspace = copy_workspace(demo_workspace, tmp_path / "ws")
    migrations_before = future_store(workspace)
    server = start_serve(workspace, tmp_path / "serve.log", env=quiet_serve_env())
    try:
        status = server.wait_exit(timeout=120)
    finally:
        server.stop()
    log = log_tail(server.log_path)
    assert status not in (None, 0), f"csbot serve did not refuse the store:\n{log}"
    assert "m999_from_a_newer_csbot" in log and "upgrade csbot" in log, log
    assert "Traceback" not in log, log
    with sqlite3.connect(f"file:{workspace / 'store.db'}?mode=ro", uri=True) as db:
        assert [r[0] for r in db.execute("select name from _sqlite_migrations order by rowid")] == migrations_before
        assert db.execute("select count(*) from conversations").fetchone() == (0,)
