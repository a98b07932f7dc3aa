"""One watcher for every live event stream: a single task reads the store for all the
watched conversations at once, every CSBOT_EVENTS_POLL_SECONDS, and hands each stream
the events it has not seen.

Why one task and not a poll per stream: with a poll per stream, the store's work grows
with the number of open streams (thousands of idle streams made every other store call
wait behind their reads); here it is one batch of queries per interval, however many
streams are open. The number of streams is bounded too, per client and overall
(`TooManyStreamsError`, 429), so a client cannot hold thousands of them.

Used from the event loop only; the store is read on the store worker's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections import Counter
from typing import Any

from bot.server.errors import TooManyStreamsError
from bot.server.inference import ThreadWorker
from bot.store import ConversationStore

log = logging.getLogger("csbot.server")

Event = tuple[str, int, dict[str, Any]]  # (event name, message id, data)

# batches a stream has not taken yet; past it, its cursor waits and the next poll re-reads
_BACKLOG = 16
# conversations per query: two SQL parameters each, well under SQLite's limit
_CONVERSATIONS_PER_QUERY = 500
# system messages the agents' side writes, each streamed as the event of its action's name
AGENT_SIDE_NOTICES = ("handed_back", "resolved")


class Subscription:
    """One live stream's place: the conversation, the client holding it, and the last
    message id it was given. Its events arrive through `next`."""

    def __init__(self, conversation_id: str, client: str, cursor: int):
        self.conversation_id, self.client, self.cursor = conversation_id, client, cursor
        self.ended = False
        self._batches: asyncio.Queue[list[Event] | None] = asyncio.Queue(maxsize=_BACKLOG)

    async def next(self, timeout: float) -> list[Event] | None:
        """The next events, in message order; [] after `timeout` seconds without any;
        None once the stream is to end (the server is shutting down)."""
        if self.ended:
            return None
        try:
            async with asyncio.timeout(timeout):
                batch = await self._batches.get()
        except TimeoutError:
            return None if self.ended else []
        return None if batch is None or self.ended else batch

    def deliver(self, events: list[Event]) -> bool:
        """Hand over events (called by the watcher): False when the stream's backlog is
        full, in which case it is left for a later poll."""
        if self._batches.full():
            return False
        self._batches.put_nowait(events)
        return True

    def end(self) -> None:
        self.ended = True
        if not self._batches.full():
            self._batches.put_nowait(None)  # wakes a stream waiting for events


class EventWatcher:
    """The live streams of one app, and the task that feeds them."""

    def __init__(self, poll_seconds: float, max_streams: int, max_per_client: int, closing: threading.Event):
        self.poll_seconds, self.max_streams, self.max_per_client = poll_seconds, max_streams, max_per_client
        self._closing = closing
        self._subscriptions: dict[str, set[Subscription]] = {}  # conversation id -> its streams
        self._per_client: Counter[str] = Counter()
        self._open = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def open_streams(self) -> int:
        return self._open

    def subscribe(self, conversation_id: str, client: str, cursor: int) -> Subscription:
        """A place for one more stream, or `TooManyStreamsError` when the client or the
        server holds as many as it may. The stream's first poll comes right away."""
        if self._per_client[client] >= self.max_per_client:
            raise TooManyStreamsError("client", self.max_per_client)
        if self._open >= self.max_streams:
            raise TooManyStreamsError("server", self.max_streams)
        subscription = Subscription(conversation_id, client, cursor)
        self._subscriptions.setdefault(conversation_id, set()).add(subscription)
        self._per_client[client] += 1
        self._open += 1
        self._wake.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Free the stream's place (once; later calls do nothing)."""
        streams = self._subscriptions.get(subscription.conversation_id)
        if streams is None or subscription not in streams:
            return
        streams.discard(subscription)
        if not streams:
            del self._subscriptions[subscription.conversation_id]
        self._per_client[subscription.client] -= 1
        if self._per_client[subscription.client] <= 0:
            del self._per_client[subscription.client]
        self._open -= 1

    def free_when_collected(self, stream: object, subscription: Subscription) -> None:
        """Free the place when `stream` is garbage, should it never run to its own end (a
        response whose client left before its first byte never starts its body). The
        collector may run on any thread: the freeing itself is done on the loop."""
        loop = asyncio.get_running_loop()

        def free() -> None:
            # a closed loop raises RuntimeError: the places went with it
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.unsubscribe, subscription)

        weakref.finalize(stream, free)

    def start(self, store: ThreadWorker[ConversationStore]) -> None:
        """Start polling `store` (on the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(store), name="csbot-event-watcher")

    async def close(self) -> None:
        """Stop polling and end every stream."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._end_all()

    async def _run(self, store: ThreadWorker[ConversationStore]) -> None:
        while not self._closing.is_set():
            self._wake.clear()
            if self._subscriptions:
                try:
                    await self._poll(store)
                except Exception:  # a failed read is retried at the next poll; the streams stay open
                    log.exception("reading live events from the store failed")
            try:
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                pass
        self._end_all()  # shutting down: the streams end, their clients reconnect elsewhere or later

    async def _poll(self, store: ThreadWorker[ConversationStore]) -> None:
        # the streams as they are now: one that subscribes meanwhile is served by the next poll
        watched = {cid: list(streams) for cid, streams in self._subscriptions.items()}
        cursors = {cid: min(s.cursor for s in streams) for cid, streams in watched.items()}
        found = await store.call(events_after, cursors)
        by_conversation: dict[str, list[Event]] = {}
        for conversation_id, event in found:
            by_conversation.setdefault(conversation_id, []).append(event)
        for conversation_id, events in by_conversation.items():
            for subscription in watched[conversation_id]:
                if subscription.ended:
                    continue
                new = [e for e in events if e[1] > subscription.cursor]
                if new and subscription.deliver(new):
                    subscription.cursor = new[-1][1]

    def _end_all(self) -> None:
        for streams in self._subscriptions.values():
            for subscription in streams:
                subscription.end()


def events_after(store: ConversationStore, cursors: dict[str, int]) -> list[tuple[str, Event]]:
    """Agent messages, the agents' notices (hand back, resolved) and handoffs (keyed by
    the bot message that announced them) with a
    message id above each conversation's cursor, as (conversation id, event), in message
    order. A few queries for all the conversations, run on the store worker."""
    found: list[tuple[str, Event]] = []
    pairs = list(cursors.items())
    for start in range(0, len(pairs), _CONVERSATIONS_PER_QUERY):
        chunk = pairs[start : start + _CONVERSATIONS_PER_QUERY]
        watched = "with watched(conversation_id, after) as (values " + ", ".join(["(?, ?)"] * len(chunk)) + ") "
        params = [value for pair in chunk for value in pair]
        # CROSS JOIN keeps `watched` the outer loop on SQLite, so messages are found through
        # their (conversation_id, turn) index, not by a scan; the join condition is in WHERE
        # because PostgreSQL allows no ON after CROSS JOIN
        for m in store.db.query(
            watched + "select m.id, m.conversation_id, m.role, m.action, m.text, m.created_at from watched w "
            "cross join messages m where m.conversation_id = w.conversation_id "
            "and m.id > w.after and (m.role = 'agent' or (m.role = 'system' and m.action in (?, ?)))",
            [*params, *AGENT_SIDE_NOTICES],
        ):
            data = {"message_id": m["id"], "text": m["text"], "created_at": m["created_at"]}
            name = "agent_message" if m["role"] == "agent" else m["action"]
            found.append((m["conversation_id"], (name, m["id"], data)))
        # handoffs of the whole chunk in one query (through the index by conversation)
        ids = [cid for cid, _ in chunk]
        for h in store.db.query(
            "select conversation_id, message_id, reason from handoffs where message_id is not null "
            f"and message_id > ? and conversation_id in ({', '.join(['?'] * len(ids))})",
            [min(after for _, after in chunk), *ids],
        ):
            if h["message_id"] > cursors[h["conversation_id"]]:
                data = {"reason": h["reason"], "message_id": h["message_id"]}
                found.append((h["conversation_id"], ("handoff", h["message_id"], data)))
    return sorted(found, key=lambda item: item[1][1])
