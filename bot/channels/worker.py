"""The channel worker: the one background task that turns the store's channel inbox into
turns, forwards what the agents' side says, and delivers the outbox to the platforms.

Why an inbox and an outbox rather than answering in the webhook: platforms want their
200 at once (Slack within 3 s) and retry otherwise, a platform API may be down when a
reply is ready, and the process may stop at any moment. Every step is a store row, so a
restart picks up where it stopped; the turn is idempotent on the platform's event id
(the store refuses a `client_message_id` twice and gives back the stored reply), and a
message is queued once (`channel_outbox`'s unique source message), so nothing is lost
and a row marked sent is never sent again. Sends retry on 5xx, 429 (honouring
Retry-After) and network errors with exponential backoff, up to
`ChannelsConfig.send_max_attempts`, then the row is marked failed and logged.

The worker knows no server: the store and the turn are given to it (`StoreRunner`,
`TurnRunner`), the clock and the HTTP client too, so tests drive it step by step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from bot.channels.base import ApiCall, Channel, Outgoing, OutgoingKind, SendOutcome, classify_response
from bot.channels.config import ChannelsConfig
from bot.errors import InvalidMessageError

if TYPE_CHECKING:
    from bot.contracts import TurnResult
    from bot.store import ConversationStore

log = logging.getLogger("csbot.channels")

T = TypeVar("T")
# rows taken per step; a busy inbox is worked through over several steps
_BATCH = 16
# a claimed inbox row not finished within this is taken again (by this or another replica)
_TURN_LEASE_S = 300.0


class StoreRunner(Protocol):
    """Runs `fn(store, *args)` where the store lives (the server's store worker thread)."""

    async def call(self, fn: Callable[..., T], *args: Any) -> T: ...


# (platform, conversation id, text, event id) -> the turn (on the conversation's inference worker)
TurnRunner = Callable[[str, str, str, str], Awaitable["TurnResult"]]


class ChannelWorker:
    """Works the inbox, the forwarding and the outbox, every `poll_interval_s` or when woken."""

    def __init__(
        self,
        channels: Mapping[str, Channel],
        config: ChannelsConfig,
        store: StoreRunner,
        turn: TurnRunner,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ):
        self.channels, self.config = dict(channels), config
        self._store, self._turn, self._client, self._clock = store, turn, client, clock
        self._forwarded = 0  # message id up to which agents' messages were looked at
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Start working (on the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="csbot-channel-worker")

    def wake(self) -> None:
        """Work now rather than at the next poll (a webhook just wrote the inbox)."""
        self._wake.set()

    async def close(self) -> None:
        """Stop; what is left in the inbox and outbox is done after the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                busy = await self.step()
            except Exception:  # the store was busy or failing: the rows wait for the next poll
                log.exception("the channel worker's step failed; trying again at the next poll")
                busy = False
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_interval_s):
                    await self._wake.wait()

    async def step(self) -> bool:
        """One round: due inbox rows, then forwarding, then due outbox rows. True when
        there was something to do (there may be more)."""
        took = await self.process_inbox()
        forwarded = await self.forward_agent_messages()
        sent = await self.send_outbox()
        return bool(took or forwarded or sent)

    # -- inbox: customer messages become turns ---------------------------------------
    async def process_inbox(self) -> int:
        rows = await self._store.call(_claim_inbound, self._clock(), _TURN_LEASE_S, _BATCH)
        # a conversation's messages in order; conversations side by side
        by_conversation: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_conversation.setdefault(row["conversation_id"], []).append(row)
        await asyncio.gather(*(self._take_turns(r) for r in by_conversation.values()))
        return len(rows)

    async def _take_turns(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            await self._take_turn(row)

    async def _take_turn(self, row: dict[str, Any]) -> None:
        platform, cid = row["platform"], row["conversation_id"]
        channel = self.channels.get(platform)
        if channel is None:  # the channel was turned off since: its messages wait for it
            await self._store.call(_retry_inbound, row["id"], f"the {platform} channel is off", self._clock() + 3600)
            return
        try:
            result = await self._turn(platform, cid, row["text"], row["event_id"])
        except InvalidMessageError as e:  # empty or too long: taking it again changes nothing
            log.warning("%s message %s refused: %s", platform, row["event_id"], e)
            await self._store.call(_finish_inbound, row["id"], self._clock(), str(e))
            return
        except Exception as e:  # noqa: BLE001 - kept on the row, logged, tried again
            error = f"{type(e).__name__}: {e}"
            if row["attempts"] >= self.config.inbox_max_attempts:
                log.error("%s message %s given up: %d tries, %s", platform, row["event_id"], row["attempts"], error)
                await self._store.call(_finish_inbound, row["id"], self._clock(), error)
            else:
                log.warning("%s message %s failed (%s); trying again", platform, row["event_id"], error)
                await self._store.call(_retry_inbound, row["id"], error, self._clock() + self._backoff(row["attempts"]))
            return
        if result.action != "agent":  # "agent": a human holds the conversation, the bot is silent
            kind: OutgoingKind = "handoff" if result.action == "handoff" else "reply"
            outgoing = Outgoing(result.reply, tuple(result.buttons), kind)
            await self._queue(channel, cid, row["address"], result.message_id, outgoing)
        await self._store.call(_finish_inbound, row["id"], self._clock(), None)

    # -- forwarding: what agents say reaches the customer's platform -------------------
    async def forward_agent_messages(self) -> int:
        rows, looked_at = await self._store.call(_unforwarded, self._forwarded, 200)
        for row in rows:
            channel = self.channels.get(row["platform"])
            if channel is not None:  # a platform turned off: its messages wait for a restart with it on
                kind: OutgoingKind = "agent" if row["role"] == "agent" else "notice"
                address = _json(row["address"])
                await self._queue(channel, row["conversation_id"], address, row["id"], Outgoing(row["text"], (), kind))
        self._forwarded = looked_at
        return len(rows)

    async def _queue(
        self, channel: Channel, conversation_id: str, address: dict[str, Any], message_id: int, outgoing: Outgoing
    ) -> None:
        message = {"text": outgoing.text, "buttons": list(outgoing.buttons)}
        await self._store.call(
            _queue_outgoing, conversation_id, channel.name, address, message_id, outgoing.kind, message, self._clock()
        )

    # -- outbox: deliveries, with retries ----------------------------------------------
    async def send_outbox(self) -> int:
        # long enough for a whole batch sent one after another (one slow conversation)
        lease = self.config.send_timeout_s * (_BATCH + 1) + 30
        rows = await self._store.call(_claim_outgoing, self._clock(), lease, _BATCH)
        by_conversation: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_conversation.setdefault(row["conversation_id"], []).append(row)
        await asyncio.gather(*(self._send_in_order(r) for r in by_conversation.values()))
        return len(rows)

    async def _send_in_order(self, rows: list[dict[str, Any]]) -> None:
        """A conversation's messages in order: after one that must wait, the rest wait too."""
        for i, row in enumerate(rows):
            retry_at = await self._send(row)
            if retry_at is not None:
                for later in rows[i + 1 :]:
                    await self._store.call(_postpone_outgoing, later["id"], retry_at)
                return

    async def _send(self, row: dict[str, Any]) -> float | None:
        """Deliver one outbox row; the time it is tried again, or None (sent or failed)."""
        platform = row["platform"]
        channel = self.channels.get(platform)
        if channel is None:
            retry_at = self._clock() + 3600
            await self._store.call(_send_failed, row["id"], f"the {platform} channel is off", retry_at)
            return retry_at
        message = row["message"]
        outgoing = Outgoing(message["text"], tuple(message["buttons"]), row["kind"])
        calls = channel.render(row["address"], outgoing)
        for done, call in enumerate(calls[row["calls_done"] :], start=row["calls_done"]):
            outcome = await self._call(channel, call)
            if outcome.ok:
                continue
            if done > row["calls_done"]:  # the calls before were delivered: never again
                await self._store.call(_calls_done, row["id"], done)
            if outcome.retry and row["attempts"] < self.config.send_max_attempts:
                delay = self._backoff(row["attempts"]) if outcome.retry_after is None else outcome.retry_after
                delay = min(delay, self.config.send_max_backoff_s)
                retry_at = self._clock() + delay
                log.warning("%s send %d failed (%s); again in %.1f s", platform, row["id"], outcome.error, delay)
                await self._store.call(_send_failed, row["id"], outcome.error, retry_at)
                return retry_at
            log.error("%s send %d failed after %d attempt(s): %s", platform, row["id"], row["attempts"], outcome.error)
            await self._store.call(_send_failed, row["id"], outcome.error, None)
            return None
        await self._store.call(_mark_sent, row["id"], self._clock())
        return None

    async def _call(self, channel: Channel, call: ApiCall) -> SendOutcome:
        base = str(getattr(self.config, f"{channel.name}_api_base", "")).rstrip("/")
        try:
            response = await self._client.request(
                call.method, base + call.path, json=call.json, headers=call.headers, timeout=self.config.send_timeout_s
            )
        except httpx.HTTPError as e:  # down, refused, timed out: worth another try
            return SendOutcome(ok=False, retry=True, error=f"{type(e).__name__}: {e}")
        judge: Callable[[int, Mapping[str, str], bytes], SendOutcome] = getattr(channel, "outcome", classify_response)
        return judge(response.status_code, response.headers, response.content)

    def _backoff(self, attempts: int) -> float:
        return min(self.config.send_backoff_s * 2 ** max(0, attempts - 1), self.config.send_max_backoff_s)


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


# the store calls, each run where the store lives -------------------------------------
def _claim_inbound(store: ConversationStore, now: float, lease: float, limit: int) -> list[dict[str, Any]]:
    return store.claim_inbound(now, lease, limit)


def _finish_inbound(store: ConversationStore, inbox_id: int, now: float, error: str | None) -> None:
    store.finish_inbound(inbox_id, now, error)


def _retry_inbound(store: ConversationStore, inbox_id: int, error: str, at: float) -> None:
    store.retry_inbound(inbox_id, error, at)


def _unforwarded(store: ConversationStore, after: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    return store.unforwarded_messages(after, limit)


def _queue_outgoing(store: ConversationStore, *args: Any) -> bool:
    return store.queue_outgoing(*args)


def _claim_outgoing(store: ConversationStore, now: float, lease: float, limit: int) -> list[dict[str, Any]]:
    return store.claim_outgoing(now, lease, limit)


def _send_failed(store: ConversationStore, outbox_id: int, error: str, retry_at: float | None) -> None:
    store.mark_send_failed(outbox_id, error, retry_at)


def _postpone_outgoing(store: ConversationStore, outbox_id: int, at: float) -> None:
    store.postpone_outgoing(outbox_id, at)


def _calls_done(store: ConversationStore, outbox_id: int, calls_done: int) -> None:
    store.mark_calls_done(outbox_id, calls_done)


def _mark_sent(store: ConversationStore, outbox_id: int, now: float) -> None:
    store.mark_sent(outbox_id, now)
