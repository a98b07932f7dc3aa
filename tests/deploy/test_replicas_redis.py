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

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot.server.redis_server import RedisServer, require_redis_server
from tests.deploy.traffic import assert_an_outage_cost_nothing, demo_customer_texts
from tests.helpers import REPO
from tests.serving import Topology, replicas_on_a_copy, require_haproxy

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
    env = {"CSBOT_TORCH_THREADS": "1", "CSBOT_REDIS_URL": redis.url}
    with replicas_on_a_copy(demo_workspace, tmp_path_factory.mktemp("replicas-redis"), REPLICAS, env=env) as topology:
        yield topology


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return demo_customer_texts(REPO / "data")


def test_redis_killed_during_load_answers_503_then_recovers_and_loses_nothing(replicas, redis, texts):
    # started again empty: every lock it held is gone
    assert_an_outage_cost_nothing(
        replicas,
        replicas.workspace / "store.db",
        texts,
        CUSTOMERS,
        stop=redis.kill,
        start=redis.start,
        logged="Redis is unreachable, turn refused",
        seed=7,
    )
