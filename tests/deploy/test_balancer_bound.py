"""A burst far beyond capacity is refused by HAProxy, not by the replicas: two `csbot serve`
replicas behind HAProxy with deploy/haproxy/haproxy.cfg's bound on customers' messages (each
replica works on one message at once, two more may wait in HAProxy's queue). Forty customers
send a streamed message at the same moment; HAProxy answers the excess itself with 503 `busy`,
`Retry-After` and the JSON body a replica would send, the replicas never have to refuse one,
and the customers, retrying with the same client_message_id as the widget does, are all
answered once: nothing lost, nothing doubled.

HAProxy comes from the Debian package; without it this is skipped (failed under CI=true).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.deploy.traffic import assert_everyone_answered, audit_store, demo_customer_texts, run_customers
from tests.helpers import REPO
from tests.serving import BALANCER_BUSY, TurnBound, replicas_on_a_copy, require_haproxy

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CUSTOMERS = 40


def test_a_burst_past_the_balancers_bound_is_refused_there_and_every_retry_is_answered_once(demo_workspace, tmp_path):
    require_haproxy()
    # a streamed reply whose pieces are spaced out holds its slot for a while, so the burst
    # meets full slots and a full queue whatever the machine's speed
    env = {"CSBOT_TORCH_THREADS": "1", "CSBOT_STREAM_PIECE_DELAY_MS": "40"}
    bound = TurnBound(per_replica=1, queued=2)
    with replicas_on_a_copy(demo_workspace, tmp_path, 2, env=env, turn_bound=bound) as topology:
        texts = demo_customer_texts(REPO / "data")
        traffic = asyncio.run(run_customers(topology.url, texts, CUSTOMERS, turns=1, stream=True, seed=3))
        stats = topology.balancer.server_stats("turns")

    assert_everyone_answered(traffic, CUSTOMERS)
    assert traffic.busy_from_balancer > 0, dict(traffic.failures)
    # the balancer's answer is the replicas' own `busy`, with its Retry-After
    assert traffic.balancer_busy_bodies == {f"2 {BALANCER_BUSY}"}
    assert json.loads(BALANCER_BUSY)["code"] == "busy"
    # no replica ever held more than its one slot, so none had to refuse a message itself
    assert traffic.busy_from_replicas == 0, dict(traffic.failures)
    assert {name: int(row["smax"]) for name, row in stats.items()} == {"r1": 1, "r2": 1}
    audit = audit_store(topology.store_path, traffic)
    assert audit.clean, audit.examples
    assert (audit.sent, audit.answered, audit.stored) == (CUSTOMERS,) * 3
