"""A burst far beyond capacity against replicas behind HAProxy: refused by the replicas
themselves, or by the balancer's bound on customers' messages (deploy/haproxy/haproxy.cfg's
`csbot_turns` back end), side by side in one run.

Run: python bench/bench_balancer_burst.py [--workspace DIR] [--replicas 2] [--burst 300]
     [--per-replica 4] [--queued 16] [--rounds 1]

Set-ups, each on a fresh copy of the workspace (empty store), `--replicas` replicas of one
inference worker and one torch thread each:

- `replicas_refuse`: HAProxy passes every message on (no per-replica limit), so each
  replica reads the whole burst and refuses what its own queue (CSBOT_MAX_QUEUED_TURNS,
  64) cannot hold: 503 `busy` with Retry-After;
- `balancer_refuses`: HAProxy lets each replica work on `--per-replica` messages at once,
  holds `--queued` more, and answers the rest itself with the same 503 `busy`.

Then `--burst` customers, each in a conversation of its own (opened first, not timed), send
one message at the same moment through the balancer (POST .../messages, bench_serve_load's
burst phase). Reported per set-up: how many were answered and refused, who refused them,
refusal and answer p50/p95 (client side), refusals without Retry-After, and `lost`
(answered but not in the store with that reply). The workspace's promoted GPT-2, if any,
composes (as in bench_serve_load). Prints progress on stderr and one JSON object as the
last line of stdout, also written under bench/results/balancer/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_serve_load import burst_phase, count_lost, customer_messages, summary  # noqa: E402 - the load bench's helpers

from tests.serving import REPLICA_HEADER, TurnBound, copy_workspace, replicas_behind_haproxy  # noqa: E402

RESULTS = REPO / "bench" / "results" / "balancer"


def log(message: str) -> None:
    print(f"• {message}", file=sys.stderr, flush=True)


async def burst_through(url: str, texts: list[str], size: int, seed: int) -> dict[str, Any]:
    """bench_serve_load's burst, plus who gave each refusal (a replica names itself)."""
    limits = httpx.Limits(max_connections=size + 10, max_keepalive_connections=size + 10)
    from_replicas = from_balancer = 0

    async def count(response: httpx.Response) -> None:
        nonlocal from_replicas, from_balancer
        if response.status_code in (429, 503) and "/messages" in response.request.url.path:
            if REPLICA_HEADER in response.headers:
                from_replicas += 1
            else:
                from_balancer += 1

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, event_hooks={"response": [count]}) as client:
        result = await burst_phase(client, texts, size, seed)
    result["refused_by"] = {"replicas": from_replicas, "balancer": from_balancer}
    return result


# an `option httplog` line: ... frontend backend/server TR/Tw/Tc/Tr/Ta status bytes ... "METHOD PATH ..."
_HTTPLOG = re.compile(
    r" (?P<backend>\S+)/(?P<server>\S+) (?P<TR>-?\d+)/(?P<Tw>-?\d+)/(?P<Tc>-?\d+)/(?P<Tr>-?\d+)/(?P<Ta>\+?\d+) "
    r"(?P<status>\d{3}) .*\"POST /api/v1/conversations/[^/ ]+/messages"
)


def balancer_timings(log_path: Path) -> dict[str, Any]:
    """What HAProxy's own log says of the burst's messages: for the refused ones (503), how
    long each was inside the service from its request's arrival to its answer (`Ta`, ms),
    apart from the load client's own slowness on the same cores."""
    refused_ta: list[float] = []
    answered_ta: list[float] = []
    for line in log_path.read_text(errors="replace").splitlines():
        m = _HTTPLOG.search(line)
        if m is None:
            continue
        ta = float(m["Ta"].lstrip("+"))
        (refused_ta if m["status"] == "503" else answered_ta).append(ta)
    return {"refused_in_service_ms": summary(refused_ta), "answered_in_service_ms": summary(answered_ta)}


def one_setup(name: str, workspace: Path, args: argparse.Namespace, texts: list[str], seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"csbot-burst-{name}-") as tmp:
        run_dir = Path(tmp)
        ws = copy_workspace(workspace, run_dir / "ws")
        bound = TurnBound(args.per_replica, args.queued) if name == "balancer_refuses" else None
        env = {"CSBOT_TORCH_THREADS": "1"}
        log(f"{name}: {args.replicas} replicas behind HAProxy")
        started = time.monotonic()
        # without the bound, no per-replica limit either: every message reaches a replica
        maxconn = 16 if bound is not None else args.burst + 100
        with replicas_behind_haproxy(
            ws, run_dir, args.replicas, env=env, maxconn_per_server=maxconn, turn_bound=bound
        ) as topo:
            ready_s = time.monotonic() - started
            log(f"{name}: ready in {ready_s:.1f} s; {args.burst} messages at once")
            result = asyncio.run(burst_through(topo.url, texts, args.burst, seed))
            time.sleep(1)  # HAProxy writes its last log lines
            result["haproxy_log"] = balancer_timings(topo.balancer.log_path)
        accepted = result.pop("_accepted")
        result["lost"] = count_lost(ws / "store.db", accepted)["lost"]
        log(
            f"{name}: {result['answered']} answered, {sum(result['refused'].values())} refused "
            f"(by {result['refused_by']}); refusal p50/p95 {result['refused_ms'].get('p50_ms')}/"
            f"{result['refused_ms'].get('p95_ms')} ms at the client, "
            f"{result['haproxy_log']['refused_in_service_ms'].get('p50_ms')}/"
            f"{result['haproxy_log']['refused_in_service_ms'].get('p95_ms')} ms in the service; lost {result['lost']}"
        )
        return {"ready_s": round(ready_s, 1), **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=REPO / "bench" / "results" / "serve-ws")
    parser.add_argument("--data", type=Path, default=REPO / "data")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--per-replica", type=int, default=4, help="messages one replica works on at once")
    parser.add_argument("--queued", type=int, default=16, help="messages that may wait in HAProxy's queue")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat both set-ups, the order reversed every other round"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.workspace / "workspace.json").is_file():
        sys.exit(f"{args.workspace} is not a built workspace: run `csbot build --workspace {args.workspace}` first")
    texts = [t for t in customer_messages(args.data) if len(t) <= 4000]
    setups = ["replicas_refuse", "balancer_refuses"]
    runs = []
    for round_no in range(args.rounds):
        order = setups if round_no % 2 == 0 else setups[::-1]
        runs.append({name: one_setup(name, args.workspace, args, texts, args.seed + round_no) for name in order})
    report = {
        "bench": "balancer_burst",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"burst-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log(f"written {out}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
