"""Simulated customers over HTTP, and an audit of what the store kept of them.

Each customer opens a conversation (POST /api/v1/conversations) and sends messages one
after another, each with its own `client_message_id`, as the widget does. A message that
fails in a way a retry can cure (no connection, a connection closed without an answer, a
502/503/504 from the balancer or a busy replica, a stream cut before its `final` event) is
sent again, with the same text, token and `client_message_id`, until it is answered or
`give_up_s` has passed: the replica that takes the retry finds the stored turn when an
earlier attempt's replica wrote it, so the customer is answered once.

`audit_store` then reads the store (read-only) and counts what went wrong: messages the
clients got an answer to that the store lost (or holds with another reply), messages
stored twice, customer messages without the bot reply right after them (a half-written
turn), messages no client sent, and conversations whose messages are out of order.

Used by tests/deploy/test_replicas.py and bench/bench_replicas.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.serving import REPLICA_HEADER, Balancer, Topology

# answers a retry can cure: the balancer found no replica (502/503), a replica is busy or
# loading (503 with Retry-After), a turn was dropped before it started (503), a gateway timeout
RETRYABLE_STATUSES = frozenset({502, 503, 504})
MAX_BACKOFF_S = 2.0


@dataclass
class SentMessage:
    """One customer message and what became of it."""

    conversation_id: str
    client_message_id: str
    text: str
    attempts: int = 0
    reply_id: int | None = None  # the bot message id of the answer the client got
    replica: str | None = None  # the replica that gave that answer (X-Csbot-Replica)
    first_sent_at: float | None = None  # time.monotonic() when it was first sent
    answered_at: float | None = None  # time.monotonic() when the answer came
    turn_ms: float | None = None  # first attempt to answer, retries included
    first_text_ms: float | None = None  # streamed: first attempt to the answer's first text

    @property
    def answered(self) -> bool:
        return self.reply_id is not None


@dataclass
class Traffic:
    """What the simulated customers sent and got."""

    conversations: dict[str, list[SentMessage]] = field(default_factory=dict)  # in send order
    retries: int = 0  # attempts after a message's first
    failures: Counter[str] = field(default_factory=Counter)  # why attempts failed (and were retried)
    refused: Counter[str] = field(default_factory=Counter)  # answers not retried: the message was given up
    gave_up: int = 0  # messages still unanswered after give_up_s
    conversations_failed: int = 0  # customers who could not open a conversation at all
    # 503 answers to messages, by who gave them: the balancer itself (no replica header,
    # deploy/haproxy's bound on waiting messages) or a replica (its own queue's bound)
    busy_from_balancer: int = 0
    busy_from_replicas: int = 0
    balancer_busy_bodies: set[str] = field(default_factory=set)
    wall_s: float = 0.0

    def messages(self) -> list[SentMessage]:
        return [m for messages in self.conversations.values() for m in messages]

    def answered(self) -> list[SentMessage]:
        return [m for m in self.messages() if m.answered]

    def by_replica(self) -> Counter[str]:
        """How many answers each replica gave."""
        return Counter(m.replica or "(none)" for m in self.answered())

    def turns_per_s(self) -> float:
        return len(self.answered()) / self.wall_s if self.wall_s else 0.0


@dataclass(frozen=True)
class _Failure:
    kind: str
    retryable: bool
    retry_after_s: float | None = None


class _Customers:
    """The customers of one run, sharing one HTTP client and one `Traffic` record."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        texts: list[str],
        stream: bool,
        think_s: tuple[float, float],
        give_up_s: float,
        seed: int,
    ):
        self.client, self.texts, self.stream, self.think_s = client, texts, stream, think_s
        self.give_up_s, self.seed = give_up_s, seed
        self.traffic = Traffic()
        self.started = time.monotonic()

    async def customer(self, index: int, turns: int | None, until: float | None) -> None:
        """Open a conversation, then send `turns` messages (or keep sending until `until`)."""
        rng = random.Random(self.seed * 100_003 + index)
        opened = await self._open_conversation()
        if opened is None:
            self.traffic.conversations_failed += 1
            return
        conversation_id, token = opened
        sent = self.traffic.conversations.setdefault(conversation_id, [])
        while (turns is None or len(sent) < turns) and (until is None or time.monotonic() < until):
            # a pause before every message, the first included: customers arrive spread
            # over the first pause instead of all in the same instant
            if self.think_s[1] > 0:
                await asyncio.sleep(rng.uniform(*self.think_s))
                if until is not None and time.monotonic() >= until:
                    break
            message = SentMessage(conversation_id, uuid.uuid4().hex, rng.choice(self.texts))
            sent.append(message)
            await self._deliver(message, token)

    async def _open_conversation(self) -> tuple[str, str] | None:
        """A new conversation and its token, retried like a message (an attempt whose answer
        was lost may leave a conversation nobody uses: it holds no message)."""
        deadline = time.monotonic() + self.give_up_s
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            try:
                r = await self.client.post("/api/v1/conversations", json={"channel": "web"})
            except httpx.TransportError as e:
                failure = _Failure(f"open: transport {type(e).__name__}", True)
            else:
                if r.status_code == 201:
                    body = r.json()
                    return body["conversation_id"], body["access_token"]
                failure = _Failure(f"open: http {r.status_code}", r.status_code in RETRYABLE_STATUSES, _retry_after(r))
            if not failure.retryable:
                self.traffic.refused[failure.kind] += 1
                return None
            self.traffic.failures[failure.kind] += 1
            await asyncio.sleep(_backoff(failure, attempt))
        return None

    async def _deliver(self, message: SentMessage, token: str) -> None:
        """Send `message` until it is answered, refused, or `give_up_s` has passed."""
        first_sent = time.perf_counter()
        message.first_sent_at = time.monotonic()
        deadline = message.first_sent_at + self.give_up_s
        while True:
            message.attempts += 1
            if message.attempts > 1:
                self.traffic.retries += 1
            attempt = self._stream_once if self.stream else self._post_once
            failure = await attempt(message, token, first_sent)
            if failure is None:
                message.turn_ms = (time.perf_counter() - first_sent) * 1000
                message.answered_at = time.monotonic()
                return
            if not failure.retryable:
                self.traffic.refused[failure.kind] += 1
                return
            self.traffic.failures[failure.kind] += 1
            if time.monotonic() >= deadline:
                self.traffic.gave_up += 1
                return
            await asyncio.sleep(_backoff(failure, message.attempts))

    async def _post_once(self, message: SentMessage, token: str, first_sent: float) -> _Failure | None:
        try:
            r = await self.client.post(
                f"/api/v1/conversations/{message.conversation_id}/messages",
                json={"text": message.text, "client_message_id": message.client_message_id},
                headers={"X-Conversation-Token": token},
            )
        except httpx.TransportError as e:
            return _Failure(f"transport {type(e).__name__}", True)
        if r.status_code != 200:
            return self._http_failure(r)
        message.reply_id = int(r.json()["message_id"])
        message.replica = r.headers.get(REPLICA_HEADER)
        return None

    def _http_failure(self, r: httpx.Response) -> _Failure:
        """A message's non-200 answer, with a busy answer counted by who gave it."""
        if r.status_code == 503:
            if REPLICA_HEADER in r.headers:
                self.traffic.busy_from_replicas += 1
            else:
                self.traffic.busy_from_balancer += 1
                self.traffic.balancer_busy_bodies.add(f"{r.headers.get('Retry-After')} {r.text}")
        return _Failure(f"http {r.status_code}", r.status_code in RETRYABLE_STATUSES, _retry_after(r))

    async def _stream_once(self, message: SentMessage, token: str, first_sent: float) -> _Failure | None:
        event = ""
        try:
            async with self.client.stream(
                "POST",
                f"/api/v1/conversations/{message.conversation_id}/messages/stream",
                json={"text": message.text, "client_message_id": message.client_message_id},
                headers={"X-Conversation-Token": token},
            ) as r:
                if r.status_code != 200:
                    await r.aread()
                    return self._http_failure(r)
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                        if event == "text" and message.first_text_ms is None:
                            message.first_text_ms = (time.perf_counter() - first_sent) * 1000
                    elif line.startswith("data: ") and event == "final":
                        message.reply_id = int(json.loads(line.removeprefix("data: "))["message_id"])
                        message.replica = r.headers.get(REPLICA_HEADER)
                        return None
                    elif line.startswith("data: ") and event == "error":
                        status = int(json.loads(line.removeprefix("data: "))["status"])
                        return _Failure(f"stream error {status}", status in RETRYABLE_STATUSES)
        except httpx.TransportError as e:
            return _Failure(f"transport {type(e).__name__}", True)
        return _Failure("stream ended before its final event", True)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _backoff(failure: _Failure, attempt: int) -> float:
    """The pause before the next attempt: the server's Retry-After, else a short growing one."""
    wanted = failure.retry_after_s if failure.retry_after_s is not None else 0.1 * attempt
    return min(MAX_BACKOFF_S, wanted)


async def run_customers(
    url: str,
    texts: list[str],
    customers: int,
    *,
    turns: int | None = None,
    duration_s: float | None = None,
    stream: bool = False,
    think_s: tuple[float, float] = (0.0, 0.0),
    give_up_s: float = 90.0,
    seed: int = 0,
) -> Traffic:
    """`customers` customers at once against `url`, each sending `turns` messages, or
    messages until `duration_s` has passed (a message under way is finished); `think_s`
    is the range of the pause before each of a customer's messages. Returns what was sent
    and got."""
    if turns is None and duration_s is None:
        raise ValueError("give turns or duration_s: the run must end")
    limits = httpx.Limits(max_connections=customers + 10, max_keepalive_connections=customers + 10)
    # no client timeout below the balancer's own (60 s for an answer to start)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(120.0), limits=limits) as client:
        run = _Customers(client, texts, stream, think_s, give_up_s, seed)
        until = time.monotonic() + duration_s if duration_s is not None else None
        await asyncio.gather(*(run.customer(i, turns, until) for i in range(customers)))
        run.traffic.wall_s = time.monotonic() - run.started
        return run.traffic


@dataclass(frozen=True)
class StoreAudit:
    """What the store holds of a run's messages, against what the clients were told."""

    sent: int  # messages the customers sent (each counted once, however many attempts)
    answered: int  # messages the customers got an answer to
    stored: int  # customer messages in the store, in the run's conversations
    lost: int  # answered, but not in the store, or stored with another reply than the one given
    doubled: int  # a client_message_id stored more than once in its conversation
    half_written: int  # a customer message without the bot's reply right after it, or the reverse
    stray: int  # a customer message that no customer sent (or sent without its client_message_id)
    out_of_order: int  # conversations whose stored messages are not in the order they were sent
    stored_unanswered: int  # stored and answered in the store, but the customer gave up before an answer
    examples: tuple[str, ...] = ()  # a few of the problems, for an assertion message

    @property
    def clean(self) -> bool:
        """Nothing lost, doubled, half written, stray or out of order."""
        return not (self.lost or self.doubled or self.half_written or self.stray or self.out_of_order)

    def to_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "examples"}


def audit_store(store: Path | str, traffic: Traffic, max_examples: int = 5) -> StoreAudit:
    """Compare the store (a SQLite file opened read-only, or a PostgreSQL URL; the replicas
    may still run) with `traffic`."""
    if isinstance(store, str):  # PostgreSQL: the same query through psycopg
        import psycopg

        db = psycopg.connect(store, autocommit=True)
        query = "select id, turn, role, client_message_id from messages where conversation_id = %s order by turn"
    else:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        query = "select id, turn, role, client_message_id from messages where conversation_id = ? order by turn"
    counts: Counter[str] = Counter()
    examples: list[str] = []

    def problem(kind: str, detail: str) -> None:
        counts[kind] += 1
        if len(examples) < max_examples:
            examples.append(f"{kind}: {detail}")

    try:
        for conversation_id, sent in traffic.conversations.items():
            rows = db.execute(query, [conversation_id]).fetchall()
            _audit_conversation(conversation_id, sent, rows, problem, counts)
    finally:
        db.close()
    messages = traffic.messages()
    return StoreAudit(
        sent=len(messages),
        answered=sum(m.answered for m in messages),
        stored=counts["stored"],
        lost=counts["lost"],
        doubled=counts["doubled"],
        half_written=counts["half_written"],
        stray=counts["stray"],
        out_of_order=counts["out_of_order"],
        stored_unanswered=counts["stored_unanswered"],
        examples=tuple(examples),
    )


def _audit_conversation(
    conversation_id: str,
    sent: list[SentMessage],
    rows: list[tuple[int, int, str, str | None]],
    problem: Callable[[str, str], None],
    counts: Counter[str],
) -> None:
    """One conversation's rows (id, turn, role, client_message_id), in turn order, against
    the messages its customer sent."""
    sent_ids = [m.client_message_id for m in sent]
    # the bot reply that follows each customer message, by client_message_id
    reply_after: dict[str, int] = {}
    stored_ids: list[str] = []
    for i, (_, turn, role, client_message_id) in enumerate(rows):
        following = rows[i + 1] if i + 1 < len(rows) else None
        previous = rows[i - 1] if i > 0 else None
        if role == "customer":
            counts["stored"] += 1
            if following is None or following[2] != "bot" or following[1] != turn + 1:
                problem("half_written", f"{conversation_id} turn {turn}: a customer message with no reply after it")
            if client_message_id is None or client_message_id not in sent_ids:
                problem("stray", f"{conversation_id} turn {turn}: {client_message_id!r} was not sent by its customer")
                continue
            if client_message_id in stored_ids:
                problem("doubled", f"{conversation_id}: {client_message_id} stored twice")
                continue
            stored_ids.append(client_message_id)
            if following is not None and following[2] == "bot":
                reply_after[client_message_id] = following[0]
        elif role == "bot" and (previous is None or previous[2] != "customer"):
            problem("half_written", f"{conversation_id} turn {turn}: a bot reply with no customer message before it")
    for message in sent:
        stored = message.client_message_id in stored_ids
        if message.answered and reply_after.get(message.client_message_id) != message.reply_id:
            got = reply_after.get(message.client_message_id)
            problem("lost", f"{conversation_id}: {message.client_message_id} answered {message.reply_id}, stored {got}")
        elif not message.answered and stored:
            counts["stored_unanswered"] += 1
    if stored_ids != [i for i in sent_ids if i in set(stored_ids)]:
        problem("out_of_order", f"{conversation_id}: stored {stored_ids}, sent {sent_ids}")


def demo_customer_texts(data: Path) -> list[str]:
    """The customer turns of the demo data (`data/conversations.jsonl`), as the simulated
    customers' messages."""
    found = []
    with (data / "conversations.jsonl").open(encoding="utf-8") as f:
        for line in f:
            found += [t["text"] for t in json.loads(line)["turns"] if t["role"] == "customer" and len(t["text"]) < 500]
    return found


def assert_everyone_answered(traffic: Traffic, expected: int) -> None:
    """Every customer got an answer to each of the `expected` messages, retries included."""
    assert traffic.conversations_failed == 0, traffic.failures
    assert not traffic.refused, f"answers that no retry can cure: {dict(traffic.refused)}"
    assert traffic.gave_up == 0, f"messages still unanswered after retrying: {traffic.gave_up}"
    assert len(traffic.answered()) == expected


async def wait_until_busy(balancer: Balancer, replica: str, after: int, timeout: float = 60) -> int:
    """Wait until `replica` has taken more than `after` requests and has one under way right
    now (HAProxy's counts); returns how many it has under way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        row = (await asyncio.to_thread(balancer.server_stats))[replica]
        if int(row["stot"]) > after and int(row["scur"]) > 0:
            return int(row["scur"])
        await asyncio.sleep(0.02)
    raise AssertionError(f"replica {replica} never had a request in flight after its first {after} in {timeout} s")


def assert_an_outage_cost_nothing(
    topology: Topology,
    store: Path | str,
    texts: list[str],
    customers: int,
    *,
    stop: Callable[[], object],
    start: Callable[[], object],
    logged: str,
    seed: int,
) -> None:
    """Customers chat over the balancer for 9 s; 2.5 s in, a service the replicas depend on
    is stopped (`stop`) for 2 s, then started again (`start`). Some requests must meet the
    outage as a 503; every customer still gets every answer, retrying with the same
    client_message_id; the store holds each message once; the same replica processes
    answered before and after (nothing restarted); their logs say `logged`."""
    pids = {name: r.proc.pid for name, r in topology.replicas.items()}

    async def load_with_outage() -> Traffic:
        load = asyncio.create_task(
            run_customers(topology.url, texts, customers, duration_s=9.0, think_s=(0.2, 0.6), stream=True, seed=seed)
        )
        await asyncio.sleep(2.5)  # customers are mid-conversation
        await asyncio.to_thread(stop)
        await asyncio.sleep(2.0)  # down long enough for requests to meet it
        await asyncio.to_thread(start)
        return await load

    traffic = asyncio.run(load_with_outage())

    met_the_outage = {kind: n for kind, n in traffic.failures.items() if "503" in kind}
    assert met_the_outage, f"no request met the outage: {dict(traffic.failures)}"
    sent = len(traffic.messages())
    assert sent > customers
    assert_everyone_answered(traffic, sent)
    audit = audit_store(store, traffic)
    assert audit.clean, audit.examples
    assert (audit.sent, audit.answered, audit.stored) == (sent,) * 3
    assert {name: r.proc.pid for name, r in topology.replicas.items()} == pids
    assert all(r.running for r in topology.replicas.values())
    logs = "".join(r.log_path.read_text(errors="replace") for r in topology.replicas.values())
    assert logged in logs
