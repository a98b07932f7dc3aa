"""Load on the HTTP service: the real `csbot serve` on a free 127.0.0.1 port, driven by an
asyncio httpx client. Bounded: a fixed number of conversations and turns, and a time cap.

Run: python bench/bench_serve_load.py [--workspace DIR] [--workers N] [--batching on|off]
     [--stream-early on|off] [--embedder auto|torch|onnx] [--conversations 50 --turns 20]
     [--stream-conversations 10 --stream-turns 10] [--paced-conversations 50]
     [--burst N [--max-queued-turns Q]]

`--batching on|off` sets the server's micro-batching (CSBOT_SERVER__BATCHING; off: today's
path, each worker with its own models, for the side-by-side figure). Without `--workers`
the server picks its default for that mode (1 worker off, 16 on). `--stream-early on|off`:
whether a GPT-2 reply streams while it decodes or is composed whole first (the default). The workspace's promoted
GPT-2, when it has one, composes the replies. `--embedder`: the embedder backend
(CSBOT_EMBEDDER__BACKEND; "auto", the default, runs MiniLM on ONNX Runtime, "torch" the
path before it) (its copy keeps the model registry); the JSON
says which model and which composers answered.

1. Load: C conversations at once, each sending T turns one after another (no pause: a
   closed loop, the hardest case for the server), through POST .../messages, each with a
   client_message_id. Counts errors; then reads the store and checks that every accepted
   message is there with the reply the client got (0 lost); reports turn latency p50/p95.
2. Streaming: S conversations at once through POST .../messages/stream; time from
   sending a message to its first `text` event, p50/p95. Run twice: as a closed loop
   (S messages always in flight) and with customers pausing 0.5-1.5 s between messages
   (S people chatting at the same time; `--paced-conversations P`: P of them instead).
3. Burst (with --burst N): N customers, each in a conversation of its own, send one
   message at the same moment; each is answered or refused with 429/503 and Retry-After.
   Reports how many of each, how long a refusal took (p50/p95: it must be quick, not a
   wait in an unbounded queue), and that every answered message is stored (0 lost).

Messages are the customer turns of data/conversations.jsonl, drawn with a fixed seed. The
workspace is built from --data when it has no workspace.json; the server runs on a copy of
it with an empty store (so the run starts alike every time and never writes into the
workspace given). Rate limits are off for the run (one client address sends everything).
Prints progress on stderr and one JSON object as the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
CSBOT = Path(sys.executable).with_name("csbot")


def log(message: str) -> None:
    print(f"• {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 1)


def save_result(result: dict, kind: str) -> Path:
    """Write a bench's JSON result to bench/results/KIND/<UTC time>.json; returns the path."""
    from datetime import UTC, datetime

    out = Path(__file__).resolve().parents[1] / "bench" / "results" / kind / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(f"written to {out}")
    return out


def summary(values_ms: list[float]) -> dict:
    return {
        "n": len(values_ms),
        "p50_ms": percentile(values_ms, 50),
        "p95_ms": percentile(values_ms, 95),
        "max_ms": round(max(values_ms), 1) if values_ms else None,
        "mean_ms": round(statistics.fmean(values_ms), 1) if values_ms else None,
    }


def customer_messages(data: Path) -> list[str]:
    texts = []
    with (data / "conversations.jsonl").open(encoding="utf-8") as f:
        for line in f:
            texts += [t["text"] for t in json.loads(line)["turns"] if t["role"] == "customer"]
    return texts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    workspace: Path,
    port: int,
    workers: int | None,
    batching: bool,
    log_path: Path,
    max_queued_turns: int | None = None,
    stream_while_composing: bool = False,
    embedder: str | None = None,
) -> subprocess.Popen:
    """`csbot serve`, its output to a file (a pipe nobody reads would fill up and block
    the server's logging)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CSBOT_RATE_LIMIT_PER_IP": "0",
        "CSBOT_RATE_LIMIT_PER_SESSION": "0",
        "CSBOT_LOG_LEVEL": "warning",
        "CSBOT_SERVER__BATCHING": "true" if batching else "false",
        "CSBOT_DIALOGUE__STREAM_WHILE_COMPOSING": "true" if stream_while_composing else "false",
        **({"CSBOT_EMBEDDER__BACKEND": embedder} if embedder is not None else {}),
        **({"CSBOT_MAX_QUEUED_TURNS": str(max_queued_turns)} if max_queued_turns is not None else {}),
    }
    workers_flag = ["--workers", str(workers)] if workers is not None else []
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [str(CSBOT), "serve", "--workspace", str(workspace), "--port", str(port), *workers_flag],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


async def wait_ready(
    client: httpx.AsyncClient, proc: subprocess.Popen, log_path: Path, timeout: float = 300
) -> tuple[float, int]:
    """Seconds until /readyz said ready, and the inference workers it reported."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"csbot serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            r = await client.get("/readyz")
            if r.status_code == 200:
                return time.perf_counter() - started, r.json()["workers"]
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    raise SystemExit(f"csbot serve was not ready in {timeout} s")


async def send_message(
    client: httpx.AsyncClient, cid: str, token: dict[str, str], text: str
) -> tuple[httpx.Response, str, float]:
    """One customer message with a fresh client_message_id: the response, that id, and
    the milliseconds until the whole response was read."""
    mid = uuid.uuid4().hex
    started = time.perf_counter()
    r = await client.post(
        f"/api/v1/conversations/{cid}/messages", json={"text": text, "client_message_id": mid}, headers=token
    )
    return r, mid, (time.perf_counter() - started) * 1000


async def load_phase(client: httpx.AsyncClient, texts: list[str], conversations: int, turns: int, seed: int) -> dict:
    latencies: list[float] = []
    accepted: list[tuple[str, str, int]] = []  # conversation, client_message_id, reply message id
    errors: dict[str, int] = {}

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async def one_conversation(index: int) -> None:
        rng = random.Random(seed * 100_003 + index)
        try:
            r = await client.post("/api/v1/conversations", json={"channel": "web"})
            r.raise_for_status()
        except httpx.HTTPError as e:
            error(f"create: {type(e).__name__}")
            return
        cid = r.json()["conversation_id"]
        # a conversation answers only to the token it was created with (else 404)
        token = {"X-Conversation-Token": r.json()["access_token"]}
        for _ in range(turns):
            try:
                r, mid, ms = await send_message(client, cid, token, rng.choice(texts))
            except httpx.HTTPError as e:
                error(f"transport: {type(e).__name__}")
                continue
            if r.status_code != 200:
                error(f"http {r.status_code}")
                continue
            latencies.append(ms)
            accepted.append((cid, mid, r.json()["message_id"]))

    started = time.perf_counter()
    await asyncio.gather(*(one_conversation(i) for i in range(conversations)))
    wall = time.perf_counter() - started
    return {
        "conversations": conversations,
        "turns_each": turns,
        "sent": conversations * turns,
        "accepted": len(accepted),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "wall_s": round(wall, 1),
        "turns_per_s": round(len(accepted) / wall, 1),
        "turn": summary(latencies),
        "_accepted": accepted,
    }


def count_lost(store: Path, accepted: list[tuple[str, str, int]]) -> dict:
    """Every accepted message must be in the store, answered by the reply the client got.
    Also the server's own time for each turn (the bot message's latency_ms: the dialogue
    manager's, without the queue and HTTP), which the public reply does not carry."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    lost = 0
    server_ms: list[float] = []
    for cid, mid, bot_id in accepted:
        row = db.execute(
            "select c.turn, b.id, b.role, b.latency_ms from messages c left join messages b "
            "on b.conversation_id = c.conversation_id and b.turn = c.turn + 1 "
            "where c.conversation_id = ? and c.client_message_id = ? and c.role = 'customer'",
            [cid, mid],
        ).fetchone()
        if row is None or row[1] != bot_id or row[2] != "bot":
            lost += 1
        elif row[3] is not None:
            server_ms.append(row[3])
    conversations = {cid for cid, _, _ in accepted}
    stored = sum(
        db.execute("select count(*) from messages where conversation_id = ?", [c]).fetchone()[0] for c in conversations
    )
    db.close()
    return {
        "lost": lost,
        "stored_messages": stored,
        "expected_messages": 2 * len(accepted),
        "server_turn": summary(server_ms),
    }


def promoted_model(workspace: Path) -> str | None:
    """The id of the workspace's promoted GPT-2 (None: the retrieval composer answers)."""
    from finetune.registry import ModelRegistry

    entry = ModelRegistry.for_workspace(workspace).promoted()
    return entry.id if entry is not None else None


def composers_used(store: Path) -> dict[str, int]:
    """How many bot replies each composer wrote in the run (e.g. "gpt2", "retrieval (gpt2
    rejected)"): shows that the promoted model took the turns."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    rows = db.execute(
        "select coalesce(composer, 'none'), count(*) from messages where role = 'bot' group by 1 order by 2 desc"
    ).fetchall()
    db.close()
    return dict(rows)


async def stream_phase(
    client: httpx.AsyncClient, texts: list[str], conversations: int, turns: int, think: tuple[float, float], seed: int
) -> dict:
    first_text: list[float] = []
    complete: list[float] = []
    errors = 0

    async def one_conversation(index: int) -> None:
        nonlocal errors
        rng = random.Random(seed * 7919 + index)
        try:
            r = await client.post("/api/v1/conversations")
            r.raise_for_status()
        except httpx.HTTPError:
            errors += turns
            return
        cid = r.json()["conversation_id"]
        token = {"X-Conversation-Token": r.json()["access_token"]}
        for _ in range(turns):
            if think[1]:
                await asyncio.sleep(rng.uniform(*think))
            started = time.perf_counter()
            got_text = got_final = False
            try:
                async with client.stream(
                    "POST",
                    f"/api/v1/conversations/{cid}/messages/stream",
                    json={"text": rng.choice(texts), "client_message_id": uuid.uuid4().hex},
                    headers=token,
                ) as r:
                    if r.status_code != 200:
                        errors += 1
                        continue
                    async for line in r.aiter_lines():
                        if line == "event: text" and not got_text:
                            got_text = True
                            first_text.append((time.perf_counter() - started) * 1000)
                        elif line == "event: final":
                            got_final = True
                        elif line == "event: error":
                            errors += 1
            except httpx.HTTPError:
                errors += 1
                continue
            if got_final:
                complete.append((time.perf_counter() - started) * 1000)
            elif got_text:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(one_conversation(i) for i in range(conversations)))
    return {
        "conversations": conversations,
        "turns_each": turns,
        "think_s": list(think),
        "errors": errors,
        "wall_s": round(time.perf_counter() - started, 1),
        "first_text": summary(first_text),
        "complete": summary(complete),
    }


async def burst_phase(client: httpx.AsyncClient, texts: list[str], size: int, seed: int) -> dict:
    """`size` customers, each in a conversation of its own, send one message at the same
    moment: far more than the workers can take at once. Each gets its answer, or a refusal
    (429/503) that must come quickly and say when to retry; nothing waits without bound.
    The conversations are opened first (not timed)."""
    rng = random.Random(seed)
    opened: list[tuple[str, dict[str, str]]] = []
    for start in range(0, size, 20):
        batch = await asyncio.gather(
            *(client.post("/api/v1/conversations", json={"channel": "web"}) for _ in range(min(20, size - start)))
        )
        opened += [(r.json()["conversation_id"], {"X-Conversation-Token": r.json()["access_token"]}) for r in batch]
    answered_ms: list[float] = []
    refused_ms: list[float] = []
    refused: dict[str, int] = {}
    without_retry_after = 0
    accepted: list[tuple[str, str, int]] = []
    other: dict[str, int] = {}
    go = asyncio.Event()

    async def one(cid: str, token: dict[str, str]) -> None:
        nonlocal without_retry_after
        text = rng.choice(texts)
        await go.wait()
        try:
            r, mid, ms = await send_message(client, cid, token, text)
        except httpx.HTTPError as e:
            other[type(e).__name__] = other.get(type(e).__name__, 0) + 1
            return
        if r.status_code == 200:
            answered_ms.append(ms)
            accepted.append((cid, mid, r.json()["message_id"]))
        elif r.status_code in (429, 503):
            refused_ms.append(ms)
            kind = f"{r.status_code} {r.json().get('code')}"
            refused[kind] = refused.get(kind, 0) + 1
            without_retry_after += "retry-after" not in r.headers
        else:
            other[f"http {r.status_code}"] = other.get(f"http {r.status_code}", 0) + 1

    tasks = [asyncio.create_task(one(cid, token)) for cid, token in opened]
    await asyncio.sleep(0.1)  # every request is waiting on the event
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    return {
        "sent": size,
        "answered": len(answered_ms),
        "refused": refused,
        "refused_without_retry_after": without_retry_after,
        "other_errors": other,
        "wall_s": round(time.perf_counter() - started, 1),
        "answered_ms": summary(answered_ms),
        "refused_ms": summary(refused_ms),
        "_accepted": accepted,
    }


async def run(args: argparse.Namespace, workspace: Path) -> dict:
    texts = [t for t in customer_messages(args.data) if len(t) <= 4000]
    port = free_port()
    log_path = workspace.parent / "serve.log"
    proc = start_server(
        workspace,
        port,
        args.workers,
        args.batching == "on",
        log_path,
        args.max_queued_turns,
        stream_while_composing=args.stream_early == "on",
        embedder=args.embedder,
    )
    connections = max(args.conversations, args.burst) + 10
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits) as client:
            ready_s, workers = await wait_ready(client, proc, log_path)
            log(
                f"csbot serve ready in {ready_s:.1f} s ({workers} inference worker(s), batching {args.batching}) "
                f"on port {port}"
            )
            # warm the connections and the server (not measured)
            await stream_phase(client, texts, 2, 2, (0.0, 0.0), seed=999)

            log(f"load: {args.conversations} conversations x {args.turns} turns at once")
            load = await load_phase(client, texts, args.conversations, args.turns, args.seed)
            log(f"streaming: {args.stream_conversations} conversations x {args.stream_turns} turns, closed loop")
            closed = await stream_phase(
                client, texts, args.stream_conversations, args.stream_turns, (0.0, 0.0), args.seed
            )
            pacing = args.paced_conversations or args.stream_conversations
            log(f"streaming: {pacing} conversations x {args.stream_turns} turns, 0.5-1.5 s between messages")
            paced = await stream_phase(client, texts, pacing, args.stream_turns, (0.5, 1.5), args.seed + 1)
            burst = None
            if args.burst:
                bound = args.max_queued_turns or "the default"
                log(f"burst: {args.burst} messages at the same moment (queue bound: {bound})")
                burst = await burst_phase(client, texts, args.burst, args.seed + 2)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    accepted = load.pop("_accepted")
    load.update(count_lost(workspace / "store.db", accepted))
    if burst is not None:
        burst_lost = count_lost(workspace / "store.db", burst.pop("_accepted"))
        burst.update(lost=burst_lost["lost"], server_turn=burst_lost["server_turn"])
    server_errors = log_path.read_text(errors="replace").count("Traceback")
    if server_errors:
        log(f"the server logged {server_errors} traceback(s); its log:\n{log_path.read_text()[-4000:]}")
    return {
        "bench": "serve_load",
        "workers": workers,
        "batching": args.batching,
        "stream_early": args.stream_early,
        "embedder": args.embedder,
        "promoted_model": promoted_model(workspace),
        "composers": composers_used(workspace / "store.db"),
        "cores": os.cpu_count(),
        "load": load,
        "stream_closed_loop": closed,
        "stream_paced": paced,
        **({"burst": burst} if burst is not None else {}),
        "ready_s": round(ready_s, 1),
        "server_tracebacks": server_errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=REPO / "bench" / "results" / "serve-ws")
    parser.add_argument("--data", type=Path, default=REPO / "data")
    parser.add_argument(
        "--workers", type=int, default=None, help="inference workers [default: the server's: 1, or 16 with batching]"
    )
    parser.add_argument(
        "--batching", choices=("on", "off"), default="off", help="the server's micro-batching across conversations"
    )
    parser.add_argument(
        "--stream-early",
        choices=("on", "off"),
        default="off",
        help="a streaming composer (GPT-2) streams while it decodes (on), or composes whole first "
        "(off, the server's default: CSBOT_DIALOGUE__STREAM_WHILE_COMPOSING)",
    )
    parser.add_argument(
        "--embedder",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="the embedder backend (CSBOT_EMBEDDER__BACKEND) [auto: ONNX Runtime, torch if it cannot]",
    )
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--stream-conversations", type=int, default=10)
    parser.add_argument("--stream-turns", type=int, default=10)
    parser.add_argument(
        "--paced-conversations",
        type=int,
        default=0,
        help="customers in the paced streaming phase [0: as many as --stream-conversations]",
    )
    parser.add_argument(
        "--burst", type=int, default=0, help="then N messages at the same moment, each its own conversation [0: skip]"
    )
    parser.add_argument(
        "--max-queued-turns", type=int, default=None, help="the server's queue bound (CSBOT_MAX_QUEUED_TURNS)"
    )
    parser.add_argument("--max-seconds", type=float, default=900, help="stop the whole run after this long")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if not (args.workspace / "workspace.json").exists():
        log(f"building the demo workspace in {args.workspace}")
        subprocess.run(
            [str(CSBOT), "build", "--data", str(args.data), "--workspace", str(args.workspace)], check=True, cwd=REPO
        )
    with tempfile.TemporaryDirectory(prefix="csbot-bench-") as tmp:
        served = Path(tmp) / "ws"
        shutil.copytree(args.workspace, served, ignore=shutil.ignore_patterns("store.db*"))
        result = asyncio.run(asyncio.wait_for(run(args, served), timeout=args.max_seconds))
    load, closed, paced = result["load"], result["stream_closed_loop"], result["stream_paced"]
    log(
        f"load: {load['accepted']}/{load['sent']} accepted, {load['errors']} errors, {load['lost']} lost; "
        f"turn p50 {load['turn']['p50_ms']} ms, p95 {load['turn']['p95_ms']} ms; {load['turns_per_s']} turns/s"
    )
    log(
        f"stream first text, closed loop: p50 {closed['first_text']['p50_ms']} ms, "
        f"p95 {closed['first_text']['p95_ms']} ms; paced: p50 {paced['first_text']['p50_ms']} ms, "
        f"p95 {paced['first_text']['p95_ms']} ms"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
