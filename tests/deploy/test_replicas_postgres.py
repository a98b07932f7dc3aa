"""Three `csbot serve` replicas sharing one PostgreSQL store (CSBOT_DATABASE_URL) behind
HAProxy, all real processes on 127.0.0.1: the several-hosts topology of deploy/ (no store
file shared; the workspace's models and index in one directory, as a ReadWriteMany volume
gives every host), proven without Docker.

- load: every message a customer got an answer to is in PostgreSQL exactly once, with that
  answer right after it, in the order sent, answered by more than one replica;
- PostgreSQL restarts during load: requests that meet it fail fast with 503 and
  Retry-After (nothing half written), the customers' retries (same client_message_id) are
  answered once it is back, and no replica is restarted;
- a handoff made on one replica is in the queue an agent signed in on another sees, and
  the agent's message reaches the customer's live event stream served by a third;
- a model promoted (and retired) with the CLI answers the next turn on every replica;
- kill -9 of one replica during load: the customers whose request died with it send it
  again and another replica answers; nothing is lost, doubled or half written, and the
  conversation locks (PostgreSQL advisory locks, the default with CSBOT_DATABASE_URL) it
  held are freed with its connections.

PostgreSQL and HAProxy come from Debian packages; without them these tests are skipped,
except under CI=true, where their absence fails them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.bot.server.conftest import next_event, sse_events
from tests.deploy.traffic import (
    Traffic,
    assert_an_outage_cost_nothing,
    assert_everyone_answered,
    audit_store,
    demo_customer_texts,
    run_customers,
    wait_until_busy,
)
from tests.finetune.test_train import train_registered_generator
from tests.helpers import REPO, run_csbot
from tests.postgres import PostgresServer
from tests.serving import (
    ServeProcess,
    Topology,
    replicas_on_a_copy,
    require_haproxy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPLICAS = 3
CUSTOMERS = 24
TURNS = 3
PASSWORD = "correct horse battery"
QUESTION = "what payment methods do you accept?"


@pytest.fixture(scope="module")
def store_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(scope="module")
def replicas(store_url: str, demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    require_haproxy()  # absent: skipped, or failed under CI=true
    env = {"CSBOT_TORCH_THREADS": "1", "CSBOT_DATABASE_URL": store_url}
    with replicas_on_a_copy(demo_workspace, tmp_path_factory.mktemp("replicas-pg"), REPLICAS, env=env) as topology:
        yield topology
    # no replica wrote a SQLite store: the workspace holds none
    assert not (topology.workspace / "store.db").exists()


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return demo_customer_texts(REPO / "data")


def test_every_message_over_the_balancer_is_stored_once_in_postgres(replicas, store_url, texts):
    traffic = asyncio.run(run_customers(replicas.url, texts, CUSTOMERS, turns=TURNS, seed=1))

    assert_everyone_answered(traffic, CUSTOMERS * TURNS)
    audit = audit_store(store_url, traffic)
    assert audit.clean, audit.examples
    assert (audit.sent, audit.answered, audit.stored) == (CUSTOMERS * TURNS,) * 3
    assert len(traffic.by_replica()) >= 2, traffic.by_replica()


def test_a_postgres_restart_during_load_answers_503_then_recovers_without_restarting_csbot(
    replicas, store_url, postgres_server, texts
):
    assert_an_outage_cost_nothing(
        replicas,
        store_url,
        texts,
        CUSTOMERS,
        stop=lambda: postgres_server.stop("fast"),
        start=postgres_server.start,
        logged="store unavailable",
        seed=5,
    )


def _customer(replica: ServeProcess) -> tuple[httpx.Client, str, dict[str, str]]:
    """A customer talking to one replica directly: its client, conversation id and token."""
    client = httpx.Client(base_url=replica.url, timeout=120)
    r = client.post("/api/v1/conversations", json={"channel": "web"})
    assert r.status_code in (200, 201), r.text
    return client, r.json()["conversation_id"], {"X-Conversation-Token": r.json()["access_token"]}


def test_a_handoff_on_one_replica_reaches_an_agent_on_another_and_the_reply_a_third(replicas, store_url, monkeypatch):
    r1, r2, r3 = (replicas.replicas[name] for name in ("r1", "r2", "r3"))
    monkeypatch.setenv("CSBOT_DATABASE_URL", store_url)  # the CLI writes the account where the replicas read
    agent_name = f"agent-{uuid.uuid4().hex[:6]}"
    run_csbot("users", "add", agent_name, "--password-stdin", workspace=replicas.workspace, stdin=PASSWORD + "\n")

    customer, cid, token = _customer(r1)
    handoff = customer.post(
        f"/api/v1/conversations/{cid}/messages", json={"text": "I want to talk to a human"}, headers=token
    )
    assert handoff.status_code == 200 and handoff.json()["action"] == "handoff", handoff.text

    # the agent signs in on r2 and finds the conversation r1 handed over in the queue
    agent = httpx.Client(base_url=r2.url, timeout=60)
    session = agent.post("/api/v1/agent/session", json={"name": agent_name, "password": PASSWORD})
    assert session.status_code == 200, session.text
    csrf = {"X-CSRF-Token": session.json()["csrf_token"]}
    queue = agent.get("/api/v1/agent/queue")
    assert cid in queue.text, queue.text

    # the customer's live events come from r3; the agent writes on r2
    watcher = httpx.Client(base_url=r3.url, timeout=60)
    with watcher, watcher.stream("GET", f"/api/v1/conversations/{cid}/events", headers=token) as stream:
        events = sse_events(stream)
        next_event(events, "handoff")
        sent = agent.post(
            f"/api/v1/agent/conversations/{cid}/messages",
            json={"text": "Hi, this is Sam from support."},
            headers=csrf,
        )
        assert sent.status_code == 201, sent.text
        message = next_event(events, "agent_message")
    assert message["id"] == str(sent.json()["message_id"])
    assert message["data"]["text"] == "Hi, this is Sam from support."
    agent.close()
    customer.close()


def test_a_model_promoted_from_the_cli_answers_the_next_turn_of_every_replica(
    replicas, store_url, tiny_checkpoint, tmp_path
):
    model_id = train_registered_generator(replicas.workspace, tiny_checkpoint, tmp_path)
    customers = {name: _customer(replica) for name, replica in replicas.replicas.items() if replica.running}

    def composers() -> dict[str, str]:
        """Who wrote each replica's answer to one more question: the store knows."""
        written = {}
        for name, (client, cid, token) in customers.items():
            r = client.post(f"/api/v1/conversations/{cid}/messages", json={"text": QUESTION}, headers=token)
            assert r.status_code == 200, r.text
            with psycopg.connect(store_url, autocommit=True) as db:
                [(composer,)] = db.execute("select composer from messages where id = %s", [r.json()["message_id"]])
            written[name] = composer
        return written

    assert set(composers().values()) == {"retrieval"}
    run_csbot("models", "promote", model_id, workspace=replicas.workspace)
    # a one-layer GPT-2 trained for seconds may be rejected by the guard ("retrieval (gpt2
    # rejected)"): either way the promoted model took the turn, on every replica
    assert all("gpt2" in composer for composer in composers().values())
    run_csbot("models", "retire", workspace=replicas.workspace)
    assert set(composers().values()) == {"retrieval"}
    for client, _, _ in customers.values():
        client.close()


def test_a_replica_killed_during_load_loses_and_doubles_nothing_in_postgres(replicas, store_url, texts):
    victim_name = "r2"
    victim = replicas.replicas[victim_name]

    async def load_and_kill() -> Traffic:
        load = asyncio.create_task(run_customers(replicas.url, texts, CUSTOMERS, turns=TURNS, stream=True, seed=7))
        await wait_until_busy(
            replicas.balancer, victim_name, after=int(replicas.balancer.server_stats()[victim_name]["stot"])
        )
        victim.kill_hard()
        return await load

    traffic = asyncio.run(load_and_kill())

    assert not victim.running
    assert_everyone_answered(traffic, CUSTOMERS * TURNS)
    audit = audit_store(store_url, traffic)
    assert audit.clean, audit.examples
    assert (audit.sent, audit.answered, audit.stored) == (CUSTOMERS * TURNS,) * 3
