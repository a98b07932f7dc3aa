"""The worker pool: turns of one conversation in order on one thread, other
conversations at the same time on other threads, resources made in their own thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.server.errors import QueueFullError, TurnDeadlineError
from bot.server.inference import InferencePool, ThreadWorker, TurnQueue


class Recorder:
    """A resource that notes which thread made it and what ran on it, in order."""

    def __init__(self) -> None:
        self.thread = threading.current_thread().name
        self.calls: list[tuple[str, str]] = []

    def run(self, conversation_id: str, label: str, pause: float = 0.0) -> str:
        assert threading.current_thread().name == self.thread  # never another thread
        if pause:
            threading.Event().wait(pause)
        self.calls.append((conversation_id, label))
        return label


def two_conversations_on_different_workers(pool: InferencePool) -> tuple[str, str]:
    ids = [f"conv-{i}" for i in range(50)]
    a = ids[0]
    b = next(i for i in ids if pool.worker_for(i) is not pool.worker_for(a))
    return a, b


def test_a_conversations_turns_run_in_arrival_order_on_one_worker():
    async def scenario():
        pool = InferencePool(Recorder, workers=3)
        await pool.start()
        # the first turn is slow: the later ones must still wait for it
        results = await asyncio.gather(
            *(pool.call("conv-x", Recorder.run, "conv-x", f"turn-{i}", 0.05 if i == 0 else 0.0) for i in range(10))
        )
        worker = pool.worker_for("conv-x")
        calls = await worker.call(lambda r: list(r.calls))
        await pool.close()
        return results, calls

    results, calls = asyncio.run(scenario())
    assert results == [f"turn-{i}" for i in range(10)]
    assert [label for _, label in calls] == [f"turn-{i}" for i in range(10)]


def test_a_slow_turn_does_not_hold_up_a_conversation_on_another_worker():
    async def scenario():
        pool = InferencePool(Recorder, workers=2)
        await pool.start()
        a, b = two_conversations_on_different_workers(pool)
        barrier = threading.Barrier(2, timeout=5)  # passes only if both run at the same time

        def meet(recorder: Recorder, label: str) -> str:
            barrier.wait()
            return label

        results = await asyncio.gather(pool.call(a, meet, "a"), pool.call(b, meet, "b"))
        await pool.close()
        return results

    assert asyncio.run(scenario()) == ["a", "b"]


def test_the_same_conversation_always_maps_to_the_same_worker():
    pool = InferencePool(Recorder, workers=4)
    assert all(pool.worker_for("abc") is pool.worker_for("abc") for _ in range(10))
    assert len({id(pool.worker_for(f"c{i}")) for i in range(100)}) == 4  # and they spread out


def test_a_stream_delivers_items_as_they_come_then_the_error_that_ended_it():
    def pieces(recorder: Recorder, n: int):
        for i in range(n):
            yield f"piece-{i}"
        raise ValueError("broke after the pieces")

    async def scenario():
        worker = ThreadWorker("w", Recorder, closer=lambda r: None)
        await worker.start()
        got = []
        with pytest.raises(ValueError, match="broke"):
            async for item in worker.stream(pieces, 3):
                got.append(item)
        await worker.close()
        return got

    assert asyncio.run(scenario()) == ["piece-0", "piece-1", "piece-2"]


def test_the_resource_is_made_and_closed_on_the_workers_own_thread():
    closed_on = []

    async def scenario():
        worker = ThreadWorker("own", Recorder, closer=lambda r: closed_on.append(threading.current_thread().name))
        await worker.start()
        made_on = await worker.call(lambda r: r.thread)
        await worker.close()
        return made_on

    made_on = asyncio.run(scenario())
    assert made_on.startswith("own") and closed_on == [made_on]
    assert made_on != threading.current_thread().name


def test_a_worker_that_has_not_started_refuses_work():
    async def scenario():
        worker = ThreadWorker("idle", Recorder)
        with pytest.raises(RuntimeError, match="has not started"):
            await worker.call(Recorder.run, "c", "x")
        with pytest.raises(RuntimeError, match="has not started"):
            async for _ in worker.stream(lambda r: iter(())):
                pass
        await worker.close()

    asyncio.run(scenario())


# -- the bounded queue ---------------------------------------------------------------


class Gate:
    """Holds a worker busy: `hold` runs on the worker until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def hold(self, recorder: Recorder) -> str:
        self.entered.set()
        assert self.opened.wait(30), "the test never opened the gate"
        return "held"

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 30), "the worker never took the blocking call"


async def _until(predicate, what: str) -> None:
    """Let the loop run until `predicate()` holds (bounded: fails after many rounds)."""
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never happened: {what}")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_past_the_queue_limit_a_call_is_refused_at_once_and_the_accepted_ones_all_run():
    async def scenario():
        pool = InferencePool(Recorder, workers=1, queue=TurnQueue(limit=2))
        await pool.start()
        gate = Gate()
        busy = asyncio.create_task(pool.call("c", gate.hold))
        await gate.wait_entered()  # started: it holds the worker, not a place in the queue
        waiting = [asyncio.create_task(pool.call("c", Recorder.run, "c", f"turn-{i}")) for i in range(2)]
        await _until(lambda: len(pool.queue.waiting) == 2, "two calls waiting")
        with pytest.raises(QueueFullError):
            pool.queue.refuse_if_full()  # the early check a route makes, taking no place
        assert len(pool.queue.waiting) == 2
        with pytest.raises(QueueFullError) as refused:
            await pool.call("c", Recorder.run, "c", "one too many")
        with pytest.raises(QueueFullError):
            pool.stream("c", lambda r: iter(["x"]))  # refused when the stream is made
        gate.opened.set()
        results = await asyncio.gather(busy, *waiting)
        pool.queue.refuse_if_full()  # room again: no error
        calls = await pool.call("c", lambda r: list(r.calls))
        await pool.close()
        return refused.value, results, calls

    refused, results, calls = asyncio.run(scenario())
    assert (refused.limit, refused.retry_after) == (2, 2)
    assert results == ["held", "turn-0", "turn-1"]
    assert [label for _, label in calls] == ["turn-0", "turn-1"]


def test_a_call_no_worker_took_before_its_deadline_is_dropped_and_never_runs():
    clock = Clock()

    async def scenario():
        pool = InferencePool(Recorder, workers=1, queue=TurnQueue(limit=5, deadline_seconds=30, clock=clock))
        await pool.start()
        gate = Gate()
        busy = asyncio.create_task(pool.call("c", gate.hold))
        await gate.wait_entered()
        late = asyncio.create_task(pool.call("c", Recorder.run, "c", "late"))
        await _until(lambda: len(pool.queue.waiting) == 1, "the call waiting")
        clock.now += 31  # the worker reaches it past its deadline
        gate.opened.set()
        await busy
        with pytest.raises(TurnDeadlineError) as dropped:
            await late
        calls = await pool.call("c", lambda r: list(r.calls))
        await pool.close()
        return dropped.value, calls, len(pool.queue.waiting)

    dropped, calls, waiting = asyncio.run(scenario())
    assert dropped.seconds == 30 and calls == [] and waiting == 0


def test_a_caller_past_the_deadline_is_answered_then_and_the_call_never_runs():
    async def scenario():
        pool = InferencePool(Recorder, workers=1, queue=TurnQueue(limit=5, deadline_seconds=0.05))
        await pool.start()
        gate = Gate()
        busy = asyncio.create_task(pool.call("c", gate.hold))
        await gate.wait_entered()
        with pytest.raises(TurnDeadlineError):  # while the worker is still busy
            await pool.call("c", Recorder.run, "c", "late")
        gate.opened.set()
        await busy
        calls = await pool.call("c", lambda r: list(r.calls))  # after the dropped call's place
        await pool.close()
        return calls, len(pool.queue.waiting)

    assert asyncio.run(scenario()) == ([], 0)


def test_a_call_whose_caller_is_cancelled_before_it_starts_never_runs():
    async def scenario():
        pool = InferencePool(Recorder, workers=1, queue=TurnQueue(limit=1))
        await pool.start()
        gate = Gate()
        busy = asyncio.create_task(pool.call("c", gate.hold))
        await gate.wait_entered()
        gone = asyncio.create_task(pool.call("c", Recorder.run, "c", "nobody waits for me"))
        await _until(lambda: len(pool.queue.waiting) == 1, "the call waiting")
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        freed = len(pool.queue.waiting)
        after = asyncio.create_task(pool.call("c", Recorder.run, "c", "next"))  # the freed place is usable
        gate.opened.set()
        await busy
        await after
        calls = await pool.call("c", lambda r: list(r.calls))
        await pool.close()
        return freed, calls

    freed, calls = asyncio.run(scenario())
    assert freed == 0 and [label for _, label in calls] == ["next"]


def test_a_stream_whose_consumer_is_cancelled_before_it_starts_never_runs():
    pulled = []

    def pieces(recorder: Recorder):
        pulled.append("started")
        yield "piece"

    async def scenario():
        pool = InferencePool(Recorder, workers=1, queue=TurnQueue(limit=1))
        await pool.start()
        gate = Gate()
        busy = asyncio.create_task(pool.call("c", gate.hold))
        await gate.wait_entered()

        async def consume():
            return [item async for item in pool.stream("c", pieces)]

        gone = asyncio.create_task(consume())
        await _until(lambda: len(pool.queue.waiting) == 1, "the stream waiting")
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        gate.opened.set()
        await busy
        await pool.call("c", lambda r: None)  # the worker is past the dropped stream's place
        await pool.close()
        return len(pool.queue.waiting)

    assert asyncio.run(scenario()) == 0
    assert pulled == []


def test_a_stream_whose_consumer_goes_away_stops_pulling_and_closes_its_iterator():
    consumer_left = threading.Event()
    making_second = threading.Event()
    pulled: list[int] = []
    closed = threading.Event()

    def endless(recorder: Recorder):
        try:
            i = 0
            while True:
                if i == 1:
                    making_second.set()
                    assert consumer_left.wait(30)
                pulled.append(i)
                yield i
                i += 1
        finally:
            closed.set()

    async def scenario():
        pool = InferencePool(Recorder, workers=1, queue=TurnQueue(limit=1))
        await pool.start()
        stream = pool.stream("c", endless)
        first = await anext(stream)
        # the worker reads one item ahead: leave while it is making the second
        assert await asyncio.to_thread(making_second.wait, 30), "the worker never read ahead"
        await stream.aclose()
        consumer_left.set()
        assert await asyncio.to_thread(closed.wait, 30), "the iterator was never closed"
        await pool.close()
        return first

    assert asyncio.run(scenario()) == 0
    assert pulled == [0, 1]  # the item being made when the consumer left, and no further
