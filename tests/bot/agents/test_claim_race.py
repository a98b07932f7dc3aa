"""Two agents claim the same waiting conversation at the same moment, from two
connections to one store file (as two server workers would): exactly one holds it, the
other is told who does; the same for two sends racing into a waiting conversation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.agents import Agent, ConversationHandling, ConversationHeldError
from bot.store import ConversationStore
from tests.bot.agents.helpers import pending_conversation


class SlowReader(ConversationHandling):
    """Pauses after reading the conversation: widens the window in which a step that read
    outside its write lock would let the other thread read the same, unclaimed row."""

    def _row(self, conversation_id: str) -> dict[str, Any]:
        row = super()._row(conversation_id)
        time.sleep(0.05)
        return row


def race(path: Path | str, step: Callable[[ConversationHandling, Agent], object], agents: list[Agent]) -> list[object]:
    """Run `step` for each agent in its own thread with its own store connection, all
    released at once; returns each one's result or the exception it raised."""
    barrier = threading.Barrier(len(agents))
    results: list[object] = [None] * len(agents)

    def run(i: int) -> None:
        with ConversationStore(path).open() as store:  # a connection of this thread's own
            handling = SlowReader(store)
            barrier.wait()
            try:
                results[i] = step(handling, agents[i])
            except Exception as e:  # noqa: BLE001 - any error is the result to compare
                results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(agents))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_of_two_simultaneous_claims_exactly_one_wins(tmp_path, store, alice, bob) -> None:
    for _ in range(5):  # a few rounds: the threads interleave differently each time
        cid = pending_conversation(store)
        results = race(store.target, lambda h, a, cid=cid: h.claim(cid, a).agent_name, [alice, bob])
        winners = [r for r in results if isinstance(r, str)]
        losers = [r for r in results if isinstance(r, ConversationHeldError)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert losers[0].holder == winners[0] == ConversationHandling(store).state(cid).agent_name
        [episode] = store.handoffs(cid)
        assert episode["agent_id"] == (alice if winners[0] == "alice" else bob).id


def test_of_two_simultaneous_first_replies_one_is_written(tmp_path, store, alice, bob) -> None:
    cid = pending_conversation(store)
    results = race(store.target, lambda h, a: h.send(cid, a, f"{a.name} here"), [alice, bob])
    assert sorted(type(r).__name__ for r in results) == ["ConversationHeldError", "int"]
    agent_messages = [m for m in store.messages(cid) if m["role"] == "agent"]
    assert len(agent_messages) == 1
    assert agent_messages[0]["text"] == f"{ConversationHandling(store).state(cid).agent_name} here"
