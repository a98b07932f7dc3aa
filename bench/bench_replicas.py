"""Several `csbot serve` replicas behind HAProxy, under load, with and without a crash: the
topology of deploy/ as real processes on 127.0.0.1, sharing one workspace and its SQLite
store.

Run: python bench/bench_replicas.py [--workspace DIR] [--customers 200] [--seconds 30]
     [--think 0.5 1.5] [--replicas 1 2 3] [--no-baseline] [--kill] [--rounds 1]
     [--torch-threads 1] [--maxconn 16] [--postgres]

For each set-up, in one run: `direct` (one `csbot serve`, no balancer: the baseline) and
HAProxy in front of 1, 2 and 3 replicas (one inference worker and, unless
`--torch-threads` says otherwise, one torch thread each). Each set-up starts on a fresh
copy of the workspace (an empty store), takes a short unmeasured warm-up, then
`--customers` simulated customers talk for `--seconds` through the streamed endpoint
(POST .../messages/stream), pausing `--think` seconds between messages. A message that
fails in a way a retry cures (a dead replica, a cut stream, 502/503/504) is sent again
with the same client_message_id (tests/deploy/traffic.py). Reported per set-up: turns
answered per second, first-text p50/p95 (from the first attempt: retries count against
it) and complete-turn p50/p95, retries, and what the store holds against what the
clients were told: `lost` (answered but not stored with that answer) and `doubled` (a
message stored twice), half-written turns, strays and out-of-order conversations, all of
which must be 0.

`--kill` adds a fault run: 3 replicas, and one of them is killed with SIGKILL a third of
the way into the load, while it has requests under way. It reports the same counts, the
client retries, HAProxy's own retries and redispatches, and how many retried messages had
been stored by the killed replica before it died (the retry got that turn back instead
of taking a second one).

`--postgres` adds HAProxy in front of the same replica counts with the store on PostgreSQL
(CSBOT_DATABASE_URL: a throwaway server from the Debian package that tests/postgres.py
starts on 127.0.0.1 with durable settings, a fresh database per set-up; the conversation
lock is then PostgreSQL's advisory lock), side by side with the SQLite set-ups of the same
run.

`--rounds N` repeats the set-ups N times, in reversed order every other round (the
machine's load drifts); the JSON has every run and the per-set-up medians.

On a 2-core machine, more replicas are not faster (they share the same two cores): the
point of the figures is that nothing is lost or doubled, and the shape of the overhead.
Prints progress on stderr and one JSON object as the last line of stdout; the JSON is
also written under bench/results/replicas/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_serve_load import customer_messages, summary  # noqa: E402 - the load bench's helpers, same folder

from tests.deploy.traffic import SentMessage, Traffic, audit_store, run_customers  # noqa: E402
from tests.helpers import CSBOT  # noqa: E402
from tests.serving import (  # noqa: E402
    SHARED_SECRET,
    Topology,
    copy_workspace,
    csbot_serve,
    quiet_serve_env,
    replicas_behind_haproxy,
)

RESULTS = REPO / "bench" / "results" / "replicas"
VICTIM = "r2"


def log(message: str) -> None:
    print(f"• {message}", file=sys.stderr, flush=True)


def torch_threads(replicas: int, fixed: int) -> str:
    """`fixed`, or with 0 each replica's share of the cores (at least one thread)."""
    return str(fixed or max(1, (os.cpu_count() or 1) // replicas))


def traffic_figures(traffic: Traffic) -> dict[str, Any]:
    """What the customers saw: throughput, latencies, retries, failures."""
    answered = traffic.answered()
    return {
        "sent": len(traffic.messages()),
        "answered": len(answered),
        "wall_s": round(traffic.wall_s, 1),
        "turns_per_s": round(traffic.turns_per_s(), 2),
        "first_text": summary([m.first_text_ms for m in answered if m.first_text_ms is not None]),
        "complete": summary([m.turn_ms for m in answered if m.turn_ms is not None]),
        "retries": traffic.retries,
        "retried_messages": sum(m.attempts > 1 for m in traffic.messages()),
        "failures": dict(traffic.failures),
        "refused": dict(traffic.refused),
        "gave_up": traffic.gave_up,
        "conversations_failed": traffic.conversations_failed,
        "by_replica": dict(sorted(traffic.by_replica().items())),
    }


def stored_before(store: Path, messages: list[SentMessage], moment: datetime) -> int:
    """How many of `messages` have their bot reply stored before `moment` (UTC)."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        count = 0
        for m in messages:
            row = db.execute("select created_at from messages where id = ?", [m.reply_id]).fetchone()
            if row is not None and datetime.fromisoformat(row[0]) < moment:
                count += 1
        return count
    finally:
        db.close()


async def load(url: str, texts: list[str], args: argparse.Namespace, seed: int) -> Traffic:
    """A short unmeasured warm-up, then the measured load."""
    await run_customers(url, texts, 4, turns=2, stream=True, seed=seed + 10_000)
    return await run_customers(
        url, texts, args.customers, duration_s=args.seconds, stream=True, think_s=tuple(args.think), seed=seed
    )


def run_direct(workspace: Path, run_dir: Path, texts: list[str], args: argparse.Namespace, seed: int) -> dict:
    """One `csbot serve`, the customers straight at it."""
    env = quiet_serve_env(CSBOT_SECRET_KEY=SHARED_SECRET, CSBOT_TORCH_THREADS=torch_threads(1, args.torch_threads))
    started = time.monotonic()
    with csbot_serve(workspace, run_dir / "direct.log", env=env) as server:
        ready_s = time.monotonic() - started
        traffic = asyncio.run(load(server.url, texts, args, seed))
    return {
        "ready_s": round(ready_s, 1),
        **traffic_figures(traffic),
        "store": audit_store(workspace / "store.db", traffic).to_json(),
    }


def run_balanced(
    workspace: Path,
    run_dir: Path,
    count: int,
    texts: list[str],
    args: argparse.Namespace,
    seed: int,
    kill: bool,
    database_url: str | None = None,
) -> dict:
    """`count` replicas behind HAProxy; with `kill`, VICTIM dies by SIGKILL during the load;
    with `database_url`, the store is that PostgreSQL database."""
    env = {"CSBOT_TORCH_THREADS": torch_threads(count, args.torch_threads)}
    if database_url is not None:
        env["CSBOT_DATABASE_URL"] = database_url
    store: Path | str = database_url if database_url is not None else workspace / "store.db"
    started = time.monotonic()
    with replicas_behind_haproxy(workspace, run_dir, count, env=env, maxconn_per_server=args.maxconn) as topology:
        ready_s = time.monotonic() - started
        killed: dict[str, Any] = {}

        async def measured() -> Traffic:
            task = asyncio.create_task(load(topology.url, texts, args, seed))
            if kill:
                await asyncio.sleep(args.seconds / 3)
                killed.update(await kill_when_busy(topology, VICTIM))
            return await task

        traffic = asyncio.run(measured())
        stats = topology.balancer.server_stats()
    result = {
        "ready_s": round(ready_s, 1),
        **traffic_figures(traffic),
        "store": audit_store(store, traffic).to_json(),
        "haproxy": {
            name: {k: int(row[k] or 0) for k in ("stot", "wretr", "wredis", "eresp", "econ")}
            | {"status": row["status"]}
            for name, row in stats.items()
        },
    }
    if kill:
        retried = [m for m in traffic.answered() if m.attempts > 1]
        result["kill"] = {
            "replica": killed["replica"],
            "in_flight_at_kill": killed["in_flight"],
            "retried_messages_answered": len(retried),
            # the killed replica had written the turn; the retry was given it back
            "retried_found_stored_turn": stored_before(workspace / "store.db", retried, killed["at_utc"]),
            "answered_by_victim_after_kill": sum(
                m.replica == VICTIM and (m.answered_at or 0) > killed["at"] + 1 for m in traffic.answered()
            ),
        }
    return result


async def kill_when_busy(topology: Topology, victim: str, timeout: float = 30) -> dict[str, Any]:
    """SIGKILL `victim` as soon as HAProxy shows a request under way at it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    in_flight = 0
    while loop.time() < deadline:
        in_flight = int((await asyncio.to_thread(topology.balancer.server_stats))[victim]["scur"])
        if in_flight > 0:
            break
        await asyncio.sleep(0.02)
    at_utc = datetime.now(UTC)
    topology.replicas[victim].kill_hard()
    log(f"killed {victim} (SIGKILL) with {in_flight} request(s) under way at it")
    return {"replica": victim, "in_flight": in_flight, "at_utc": at_utc, "at": time.monotonic()}


def one_setup(
    name: str, args: argparse.Namespace, texts: list[str], tmp: Path, seed: int, postgres: Any = None
) -> dict:
    run_dir = tmp / f"{name}-{seed}"
    run_dir.mkdir()
    workspace = copy_workspace(args.workspace, run_dir / "ws")
    log(f"{name}: starting; load: {args.customers} customers for {args.seconds:g} s")
    load_before = os.getloadavg()[0]
    if name == "direct":
        result = run_direct(workspace, run_dir, texts, args, seed)
    else:
        count = int(name.split("-")[1])
        database_url = postgres.create_database() if name.endswith("-pg") else None
        result = run_balanced(
            workspace, run_dir, count, texts, args, seed, kill=name.endswith("kill"), database_url=database_url
        )
        if database_url is not None:
            postgres.drop_database(database_url)
    result["loadavg_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    store = result["store"]
    log(
        f"{name}: {result['answered']} answered, {result['turns_per_s']} turns/s, first text p50 "
        f"{result['first_text']['p50_ms']} ms p95 {result['first_text']['p95_ms']} ms; retries {result['retries']}; "
        f"lost {store['lost']}, doubled {store['doubled']}, half written {store['half_written']}"
    )
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[Any]:
    """A PostgreSQL server from the Debian package on 127.0.0.1, durable (fsync on), removed
    afterwards."""
    from tests.postgres import PostgresServer, postgres_bin_dir

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise SystemExit("--postgres: no PostgreSQL binaries (apt-get install postgresql)")
    durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
    with PostgresServer(bin_dir, settings=durable) as server:
        server.start()
        log(f"PostgreSQL on {server.url()}")
        yield server


def medians(runs: list[dict]) -> dict[str, Any]:
    def median(path: tuple[str, ...]) -> float | None:
        values = []
        for run in runs:
            value: Any = run
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, int | float):
                values.append(value)
        return round(statistics.median(values), 1) if values else None

    return {
        "turns_per_s": median(("turns_per_s",)),
        "first_text_p50_ms": median(("first_text", "p50_ms")),
        "first_text_p95_ms": median(("first_text", "p95_ms")),
        "complete_p50_ms": median(("complete", "p50_ms")),
        "complete_p95_ms": median(("complete", "p95_ms")),
        "lost": sum(r["store"]["lost"] for r in runs),
        "doubled": sum(r["store"]["doubled"] for r in runs),
        "half_written": sum(r["store"]["half_written"] for r in runs),
        "retries": sum(r["retries"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=REPO / "bench" / "results" / "serve-ws")
    parser.add_argument("--data", type=Path, default=REPO / "data")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the customers keep sending")
    parser.add_argument(
        "--think", type=float, nargs=2, default=(0.5, 1.5), metavar=("MIN", "MAX"), help="pause between messages (s)"
    )
    parser.add_argument("--replicas", type=int, nargs="*", default=[1, 2, 3], help="replica counts behind HAProxy")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one process without a balancer")
    parser.add_argument("--kill", action="store_true", help="add the fault run: SIGKILL one of 3 replicas mid-load")
    parser.add_argument(
        "--maxconn", type=int, default=16, help="requests at once per replica (HAProxy queues the rest)"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch threads per replica (0: cores // replicas); 1 by default: on a loaded machine two threads "
        "per process ran 3-4x slower than one",
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="the JSON file [bench/results/replicas/replicas.json]")
    parser.add_argument("--keep", action="store_true", help="keep each set-up's workspace and logs (printed)")
    parser.add_argument("--postgres", action="store_true", help="add the replica counts with the store on PostgreSQL")
    args = parser.parse_args()

    if not (args.workspace / "workspace.json").exists():
        log(f"building the demo workspace in {args.workspace}")
        import subprocess

        subprocess.run(
            [str(CSBOT), "build", "--data", str(args.data), "--workspace", str(args.workspace)], check=True, cwd=REPO
        )
    texts = [t for t in customer_messages(args.data) if len(t) <= 4000]
    setups = ([] if args.no_baseline else ["direct"]) + [f"haproxy-{n}" for n in args.replicas]
    if args.postgres:
        setups += [f"haproxy-{n}-pg" for n in args.replicas]
    if args.kill:
        setups.append("haproxy-3-kill")
    runs: dict[str, list[dict]] = {name: [] for name in setups}
    tmp = Path(tempfile.mkdtemp(prefix="csbot-replicas-"))
    stack = contextlib.ExitStack()
    try:
        postgres = stack.enter_context(throwaway_postgres()) if args.postgres else None
        for round_index in range(args.rounds):
            order = setups if round_index % 2 == 0 else list(reversed(setups))
            for name in order:
                runs[name].append(one_setup(name, args, texts, tmp, seed=args.seed + round_index, postgres=postgres))
    finally:
        stack.close()
        if args.keep:
            log(f"workspaces and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "bench": "replicas",
        "machine": {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine()},
        "customers": args.customers,
        "seconds": args.seconds,
        "think_s": list(args.think),
        "maxconn_per_replica": args.maxconn,
        "torch_threads_per_replica": args.torch_threads or "cores // replicas",
        "rounds": args.rounds,
        "setups": {name: {"median": medians(r), "runs": r} for name, r in runs.items()},
    }
    out = args.out or RESULTS / ("replicas-kill.json" if args.kill else "replicas.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {out}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
