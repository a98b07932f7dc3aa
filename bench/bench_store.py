"""The conversation store's write rate and size: what one SQLite store (or, with
--postgres, one PostgreSQL database) can take, for the capacity projection in
docs/deployment.md.

    python bench/bench_store.py [--conversations 2000] [--writers 1 2 4] [--data data] [--postgres]

--postgres runs the same writers against a throwaway PostgreSQL server from the Debian
package (tests/postgres.py starts it on 127.0.0.1, durable settings: fsync and
synchronous_commit on), one fresh database per writer count, with SQLite's runs of the
same conversations beside it as the baseline.

Each writer is its own process (as replicas are) with its own `ConversationStore` on one
fresh SQLite file (WAL, the write lock taken first, as in production). Each writes its
share of the conversations through the store's real API: `create_conversation`, then one
`record_turn` per customer turn (the customer message, the bot reply with 3 sources and
its fields, the dialogue state), the texts taken in order from the demo transcripts of
`data/conversations.jsonl` (so lengths are real). Reported per writer count: turns
written a second (wall clock, all writers together), and the store's size after a WAL
checkpoint, per conversation and per turn. One writer is the baseline of the same run.

Progress on stderr; the LAST stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.store import ConversationStore, DialogueState, MessageRecord  # noqa: E402


def transcript_turns(data: Path) -> list[list[tuple[str, str]]]:
    """(customer text, the reply after it) per turn, per demo conversation."""
    out = []
    for line in (data / "conversations.jsonl").read_text().splitlines():
        turns = json.loads(line)["turns"]
        pairs = [
            (a["text"], b["text"])
            for a, b in itertools.pairwise(turns)
            if a["role"] == "customer" and b["role"] != "customer"
        ]
        if pairs:
            out.append(pairs)
    return out


def write_share(path: str, conversations: list[list[tuple[str, str]]], start: mp.Barrier) -> None:
    """One writer: its conversations, a turn per transaction, through the store's API."""
    with ConversationStore(path) as store:
        start.wait()
        for k, turns in enumerate(conversations):
            cid = store.create_conversation("web")
            state = DialogueState()
            for n, (question, reply) in enumerate(turns):
                state.active_intent = "order_status"
                customer = MessageRecord("customer", question, client_message_id=f"{cid}-{n}")
                bot = MessageRecord(
                    "bot",
                    reply,
                    intent="order_status",
                    confidence=0.91,
                    out_of_scope=False,
                    action="answer",
                    sources=((f"conv-{k:04d}#t{n}", 0.83), ("kb-returns#0", 0.71), ("conv-0042#t2", 0.66)),
                    composer="retrieval",
                    latency_ms=25.0,
                )
                store.record_turn(cid, customer, bot, state)


def run(writers: int, conversations: list[list[tuple[str, str]]], workdir: Path, server=None) -> dict:
    path = workdir / f"store-{writers}.db" if server is None else server.create_database()
    ConversationStore(path).open().close()  # migrated before the clock starts
    shares = [conversations[i::writers] for i in range(writers)]
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(writers + 1)
    procs = [ctx.Process(target=write_share, args=(str(path), share, start)) for share in shares]
    for p in procs:
        p.start()
    start.wait()
    began = time.perf_counter()
    for p in procs:
        p.join()
    seconds = time.perf_counter() - began
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit(f"a writer failed (exit codes {[p.exitcode for p in procs]})")
    if server is None:
        with sqlite3.connect(path) as db:
            db.execute("pragma wal_checkpoint(truncate)")
            n_conv = db.execute("select count(*) from conversations").fetchone()[0]
            n_msgs = db.execute("select count(*) from messages").fetchone()[0]
        size = os.path.getsize(path)
    else:
        import psycopg

        with psycopg.connect(str(path), autocommit=True) as db:
            db.execute("vacuum analyze")
            n_conv = db.execute("select count(*) from conversations").fetchone()[0]
            n_msgs = db.execute("select count(*) from messages").fetchone()[0]
            size = db.execute("select pg_database_size(current_database())").fetchone()[0]
            # an empty csbot database's size, so that the figure is what the conversations add
            empty = server.create_database()
            ConversationStore(empty).open().close()
            with psycopg.connect(empty, autocommit=True) as e:
                size -= e.execute("select pg_database_size(current_database())").fetchone()[0]
            server.drop_database(empty)
        server.drop_database(str(path))
    turns = n_msgs // 2
    return {
        "store": "sqlite" if server is None else "postgresql",
        "writers": writers,
        "conversations": n_conv,
        "turns": turns,
        "seconds": round(seconds, 3),
        "turns_per_s": round(turns / seconds, 1),
        "bytes_per_conversation": round(size / n_conv),
        "bytes_per_turn": round(size / turns),
        "store_bytes": size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=2000)
    ap.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--data", type=Path, default=REPO / "data")
    ap.add_argument("--postgres", action="store_true", help="also run against a throwaway PostgreSQL server")
    args = ap.parse_args()
    demo = transcript_turns(args.data)
    conversations = [demo[i % len(demo)] for i in range(args.conversations)]
    mean_turns = sum(map(len, conversations)) / len(conversations)
    results = []
    with tempfile.TemporaryDirectory(prefix="csbot-store-bench-") as tmp, contextlib.ExitStack() as stack:
        servers = [None]
        if args.postgres:
            from tests.postgres import PostgresServer, postgres_bin_dir

            bin_dir = postgres_bin_dir()
            if bin_dir is None:
                raise SystemExit("--postgres: no PostgreSQL binaries (apt-get install postgresql)")
            durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
            server = stack.enter_context(PostgresServer(bin_dir, settings=durable))
            server.start()
            servers.append(server)
        for server in servers:
            for writers in args.writers:
                kind = "sqlite" if server is None else "postgresql"
                print(f"{kind}, {writers} writer(s): {args.conversations} conversations ...", file=sys.stderr)
                results.append(run(writers, conversations, Path(tmp), server))
                print(f"  {results[-1]}", file=sys.stderr, flush=True)
    base = results[0]["turns_per_s"]
    for r in results:
        r["vs_first"] = round(r["turns_per_s"] / base, 2)
    print(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "sqlite": sqlite3.sqlite_version},
                "mean_turns_per_conversation": round(mean_turns, 2),
                "runs": results,
            }
        )
    )


if __name__ == "__main__":
    main()
