"""Three `csbot serve` replicas behind HAProxy sharing one Redis (CSBOT_REDIS_URL: the
conversation lock and the rate limits live there), all real processes on 127.0.0.1.

- Redis is killed during load and started again (empty, as after a crash): the turns that
  meet the outage are refused with 503 `lock_unavailable` and Retry-After, never run
  unordered; the customers' retries (same client_message_id) are answered once Redis is
  back; nothing is lost, doubled or half written, and no replica is restarted.

(Rate limits shared through Redis, and counted per process while it is down, are tested
with two apps in tests/bot/server/test_redis_limits.py.)

Redis and HAProxy come from Debian packages; without them these tests are skipped, except
under CI=true, where their absence fails them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot.server.redis_server import RedisServer, require_redis_server
from tests.deploy.traffic import Traffic, assert_everyone_answered, audit_store, demo_customer_texts, run_customers
from tests.helpers import REPO
from tests.serving import Topology, copy_workspace, log_tail, replicas_behind_haproxy, require_haproxy

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPLICAS = 3
CUSTOMERS = 24


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def replicas(redis: RedisServer, demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    require_haproxy()  # absent: skipped, or failed under CI=true
    run_dir = tmp_path_factory.mktemp("replicas-redis")
    workspace = copy_workspace(demo_workspace, run_dir / "ws")
    env = {"CSBOT_TORCH_THREADS": "1", "CSBOT_REDIS_URL": redis.url}
    with replicas_behind_haproxy(workspace, run_dir, REPLICAS, env=env) as topology:
        yield topology
    for replica in topology.replicas.values():
        assert "Traceback" not in replica.log_path.read_text(errors="replace"), log_tail(replica.log_path)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return demo_customer_texts(REPO / "data")


def test_redis_killed_during_load_answers_503_then_recovers_and_loses_nothing(replicas, redis, texts):
    pids = {name: r.proc.pid for name, r in replicas.replicas.items()}

    async def load_and_crash_redis() -> Traffic:
        load = asyncio.create_task(
            run_customers(replicas.url, texts, CUSTOMERS, duration_s=9.0, think_s=(0.2, 0.6), stream=True, seed=7)
        )
        await asyncio.sleep(2.5)  # customers are mid-conversation
        await asyncio.to_thread(redis.kill)
        await asyncio.sleep(2.0)  # down long enough for turns to meet it
        await asyncio.to_thread(redis.start)  # empty: every lock it held is gone
        return await load

    traffic = asyncio.run(load_and_crash_redis())

    met_the_outage = {kind: n for kind, n in traffic.failures.items() if "503" in kind}
    assert met_the_outage, f"no request met the outage: {dict(traffic.failures)}"
    sent = len(traffic.messages())
    assert sent > CUSTOMERS
    assert_everyone_answered(traffic, sent)
    audit = audit_store(replicas.workspace / "store.db", traffic)
    assert audit.clean, audit.examples
    assert (audit.sent, audit.answered, audit.stored) == (sent,) * 3
    assert {name: r.proc.pid for name, r in replicas.replicas.items()} == pids
    assert all(r.running for r in replicas.replicas.values())
    logs = "".join(r.log_path.read_text(errors="replace") for r in replicas.replicas.values())
    assert "Redis is unreachable, turn refused" in logs
