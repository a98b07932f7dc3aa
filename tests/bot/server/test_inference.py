"""The worker pool: turns of one conversation in order on one thread, other
conversations at the same time on other threads, resources made in their own thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.server.inference import InferencePool, ThreadWorker


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
        results = await asyncio.gather(*(
            pool.call("conv-x", Recorder.run, "conv-x", f"turn-{i}", 0.05 if i == 0 else 0.0) for i in range(10)
        ))
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
