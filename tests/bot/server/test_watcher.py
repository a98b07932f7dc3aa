"""The one watcher behind every live event stream: its caps per client and overall, one
store read per poll for all the streams, each stream's own cursor, and the end of every
stream at shutdown. Against a real store (SQLite) on a real store worker, then in the
real app with thousands of attempts from one client and from clients behind a proxy."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import pytest

from bot.server import watcher as watcher_module
from bot.server.errors import TooManyStreamsError
from bot.server.inference import ThreadWorker
from bot.server.watcher import EventWatcher, events_after
from bot.store import ConversationStore, MessageRecord
from tests.bot.server.conftest import copy_workspace, quiet_settings, sse_events
from tests.bot.server.serving import RawResponse, header, raw_request, serving, until


class CountingStore(ThreadWorker[ConversationStore]):
    """The store worker, counting the calls made on it."""

    def __init__(self, path: Path):
        super().__init__("test-store", lambda: ConversationStore(path).open(), lambda s: s.close())
        self.calls = 0

    async def call(self, fn, *args, **kwargs):
        self.calls += 1
        return await super().call(fn, *args, **kwargs)


def handed_off_conversation(store: ConversationStore) -> tuple[str, int]:
    """A conversation whose bot handed it off: (its id, the handoff's message id)."""
    cid = store.create_conversation("web")
    store.record_turn(
        cid,
        MessageRecord(role="customer", text="a person please"),
        MessageRecord(role="bot", text="I'll get someone.", action="handoff"),
        state=store.load_state(cid),
        handoff_reason="customer asked for a human",
    )
    handoff = store.handoffs(cid)[0]["message_id"]
    return cid, handoff


def watcher(
    poll_seconds: float = 60.0,
    max_streams: int = 100,
    max_per_client: int = 100,
    closing: threading.Event | None = None,
) -> EventWatcher:
    return EventWatcher(poll_seconds, max_streams, max_per_client, closing or threading.Event())


def test_a_client_at_its_cap_or_a_server_at_its_cap_is_refused_until_a_stream_closes():
    async def scenario():
        w = watcher(max_streams=3, max_per_client=2)
        a1, a2 = w.subscribe("c1", "1.1.1.1", 0), w.subscribe("c2", "1.1.1.1", 0)
        with pytest.raises(TooManyStreamsError) as per_client:
            w.subscribe("c3", "1.1.1.1", 0)
        w.subscribe("c1", "2.2.2.2", 0)
        with pytest.raises(TooManyStreamsError) as overall:
            w.subscribe("c1", "3.3.3.3", 0)
        w.unsubscribe(a1)
        w.unsubscribe(a1)  # once only: a second call frees nothing more
        w.subscribe("c3", "1.1.1.1", 0)  # its place is free again
        assert w.open_streams == 3
        w.unsubscribe(a2)
        w.subscribe("c1", "3.3.3.3", 0)
        return per_client.value, overall.value

    per_client, overall = asyncio.run(scenario())
    assert (per_client.scope, per_client.limit) == ("client", 2)
    assert (overall.scope, overall.limit) == ("server", 3)


def test_a_stream_that_never_started_frees_its_place_once_it_is_garbage():
    async def scenario():
        w = watcher(max_per_client=1)
        subscription = w.subscribe("c1", "1.1.1.1", 0)

        async def body():
            yield b"never reached"

        stream = body()
        w.free_when_collected(stream, subscription)
        del stream  # the response was dropped before its body ran
        for _ in range(100):
            if w.open_streams == 0:
                break
            await asyncio.sleep(0)
        w.subscribe("c1", "1.1.1.1", 0)  # the client's one place is free again
        return w.open_streams

    assert asyncio.run(scenario()) == 1


def test_one_store_read_serves_every_stream_each_from_its_own_cursor(tmp_path):
    path = tmp_path / "store.db"
    with ConversationStore(path) as store:
        a, handoff_a = handed_off_conversation(store)
        b, handoff_b = handed_off_conversation(store)
        first = store.record_agent_message(a, "first")
        second = store.record_agent_message(a, "second")
        on_b = store.record_agent_message(b, "on b")

    async def scenario():
        worker = CountingStore(path)
        await worker.start()
        w = watcher()
        # 50 streams subscribe before the watcher's first poll: one read must serve them all
        from_start = [w.subscribe(a, f"10.0.0.{i}", 0) for i in range(48)]
        resumed = w.subscribe(a, "10.0.1.1", first)
        other = w.subscribe(b, "10.0.1.2", 0)
        w.start(worker)
        got = [await s.next(timeout=30) for s in (*from_start, resumed, other)]
        calls = worker.calls
        await w.close()
        await worker.close()
        return got, calls

    got, calls = asyncio.run(scenario())
    assert calls == 1
    ids = [[event_id for _, event_id, _ in batch] for batch in got]
    assert ids[:48] == [[handoff_a, first, second]] * 48
    assert ids[48] == [second]  # after its Last-Event-ID only
    assert ids[49] == [handoff_b, on_b]
    name, _, data = got[49][1]
    assert name == "agent_message" and data["text"] == "on b" and data["created_at"]
    assert got[49][0][0] == "handoff" and got[49][0][2]["reason"] == "customer asked for a human"


def test_an_event_recorded_later_reaches_the_streams_at_a_later_poll(tmp_path):
    path = tmp_path / "store.db"
    with ConversationStore(path) as store:
        cid, handoff = handed_off_conversation(store)

    async def scenario():
        worker = ThreadWorker("test-store", lambda: ConversationStore(path).open(), lambda s: s.close())
        await worker.start()
        w = watcher(poll_seconds=0.02)
        stream = w.subscribe(cid, "1.1.1.1", handoff)
        w.start(worker)
        agent = await worker.call(ConversationStore.record_agent_message, cid, "hello from Sam")
        batch = []
        while not batch:  # pings ([]) until the poll that finds it
            batch = await stream.next(timeout=30)
        await w.close()
        await worker.close()
        return agent, batch

    agent, batch = asyncio.run(scenario())
    assert [(name, event_id) for name, event_id, _ in batch] == [("agent_message", agent)]


def test_a_quiet_stream_is_told_so_after_its_timeout_and_every_stream_ends_at_shutdown(tmp_path):
    path = tmp_path / "store.db"
    ConversationStore(path).open().close()

    async def scenario():
        worker = ThreadWorker("test-store", lambda: ConversationStore(path).open(), lambda s: s.close())
        await worker.start()
        closing = threading.Event()
        w = watcher(poll_seconds=0.02, closing=closing)
        streams = [w.subscribe("c1", "1.1.1.1", 0), w.subscribe("c2", "2.2.2.2", 0)]
        w.start(worker)
        quiet = await streams[0].next(timeout=0.05)
        closing.set()  # what `csbot serve` does on SIGTERM
        ended = [await s.next(timeout=30) for s in streams]
        await w.close()
        await worker.close()
        return quiet, ended

    assert asyncio.run(scenario()) == ([], [None, None])


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def test_the_batch_query_reads_many_conversations_each_after_its_own_cursor(backend, request, tmp_path, monkeypatch):
    monkeypatch.setattr(watcher_module, "_CONVERSATIONS_PER_QUERY", 7)  # several chunks, cheaply
    target = tmp_path / "store.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    with ConversationStore(target) as store:
        conversations = [handed_off_conversation(store) for _ in range(30)]
        agent = {cid: store.record_agent_message(cid, f"for {cid}") for cid, _ in conversations[::4]}
        cursors = dict(conversations)  # handoffs already seen
        found = events_after(store, cursors)
    assert [(cid, event[1]) for cid, event in found] == sorted(agent.items(), key=lambda item: item[1])


# -- in the real app -----------------------------------------------------------------


def events_path(conversation_id: str) -> str:
    return f"/api/v1/conversations/{conversation_id}/events"


@pytest.mark.slow
def test_4000_stream_attempts_are_bounded_by_the_caps_and_a_closed_stream_frees_its_place(server_workspace, tmp_path):
    workspace = copy_workspace(server_workspace, tmp_path / "ws")
    # small caps keep the test cheap; 127.0.0.1 is trusted so that forwarded addresses
    # stand for other clients
    settings = quiet_settings(
        workspace, max_event_streams_per_client=4, max_event_streams=20, trusted_proxies=["127.0.0.1"]
    )
    with serving(settings) as (live, rt):
        cid = live.new_conversation()
        port = int(live.url.rsplit(":", 1)[1])
        auth = live.auth(cid)
        open_streams: list[socket.socket] = []
        refused: list[RawResponse] = []
        try:
            for attempt in range(4000):
                # half from the proxy's own address, half from ten clients behind it
                forwarded = {} if attempt < 2000 else {"X-Forwarded-For": f"203.0.113.{attempt % 10}"}
                r = raw_request(port, "GET", events_path(cid), {**auth, **forwarded})
                if r.status == 200:
                    open_streams.append(r.sock)
                else:
                    refused.append(r)
                if attempt == 1999:
                    from_one_client = len(open_streams)

            # a store-backed call while the streams are open: reported (pytest -rP), not asserted
            started = time.perf_counter()
            for _ in range(20):
                assert live.get(cid).status_code == 200
            print(
                f"history call with {len(open_streams)} streams open: "
                f"{(time.perf_counter() - started) / 20 * 1000:.1f} ms on average"
            )

            assert from_one_client == 4
            assert len(open_streams) == 20 == rt.watcher.open_streams
            assert len(refused) == 3980 and {r.status for r in refused} == {429}
            assert {r.json()["code"] for r in refused} == {"too_many_streams"}
            assert "from this address (the limit is 4)" in refused[0].json()["detail"]
            assert "on this server (the limit is 20)" in refused[-1].json()["detail"]
            assert header(refused[0], "retry-after") is not None
        finally:
            for sock in open_streams:
                sock.close()
        until(lambda: rt.watcher.open_streams == 0, "the closed streams' places freed")
        again = raw_request(port, "GET", events_path(cid), auth)
        assert again.status == 200
        again.sock.close()


@pytest.mark.slow
def test_a_live_stream_ends_when_the_server_begins_to_shut_down(server_workspace, tmp_path):
    workspace = copy_workspace(server_workspace, tmp_path / "ws")
    with serving(quiet_settings(workspace)) as (live, rt):
        cid = live.new_conversation()
        with live.client.stream("GET", events_path(cid), headers=live.auth(cid)) as r:
            stream = sse_events(r)
            assert next(stream) == {"comment": "ping"}
            rt.begin_shutdown()
            rest = list(stream)  # ends: the client would reconnect, with Last-Event-ID
        assert all("comment" in item for item in rest)
