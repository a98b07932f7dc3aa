"""The turn queue in the real app, with real assistants whose turns wait at a gate: a
flood past the queue's size gets 503 + Retry-After at once while the accepted turns all
complete; a turn no worker took before its deadline, or whose client left before it
started, is never taken, and nothing of it is stored."""

from __future__ import annotations

import json
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import pytest

from tests.bot.server.conftest import copy_workspace, quiet_settings
from tests.bot.server.serving import GatedAssistant, send_request, serving, until

pytestmark = pytest.mark.slow


def customer_texts(live, conversation_id: str) -> list[str]:
    with live.store() as store:
        return [m["text"] for m in store.messages(conversation_id) if m["role"] == "customer"]


def test_a_flood_past_the_queue_gets_503_with_retry_after_and_the_accepted_turns_all_complete(
    server_workspace, tmp_path
):
    settings = quiet_settings(copy_workspace(server_workspace, tmp_path / "ws"), workers=1, max_queued_turns=2)
    gate = GatedAssistant(settings)
    with serving(settings, gate.factory) as (live, rt), ThreadPoolExecutor(8) as threads:
        cid = live.new_conversation()
        first = threads.submit(live.say, cid, "hello")
        gate.wait_entered()  # the worker is busy with it: what comes next waits in the queue
        flood = [threads.submit(live.say, cid, f"message {i}") for i in range(6)]
        refused = []
        pending = set(flood)
        while len(refused) < 4:  # two find a place and wait at the gate; the others are answered now
            done, pending = wait(pending, timeout=60, return_when=FIRST_COMPLETED)
            assert done, "the refusals did not come while the worker was busy"
            refused += [f.result() for f in done]
        assert len(rt.pool.queue.waiting) == 2
        # the streamed route refuses the same way: a plain 503, before any stream opens
        streamed = live.post(cid, "/messages/stream", {"text": "one more"})
        assert (streamed.status_code, streamed.headers["content-type"]) == (503, "application/json")
        assert streamed.json()["code"] == "busy"
        # refused before its token is looked up on the store thread: a full queue costs a
        # request nothing more, and tells a caller without the token nothing about it
        stranger = live.client.post(
            f"/api/v1/conversations/{cid}/messages", json={"text": "hi"}, headers={"X-Conversation-Token": "wrong"}
        )
        assert (stranger.status_code, stranger.json()["code"]) == (503, "busy")
        gate.opened.set()
        accepted = [first.result(), *(f.result() for f in pending)]

    assert [r.status_code for r in refused] == [503] * 4
    assert {r.json()["code"] for r in refused} == {"busy"}
    assert {r.headers["retry-after"] for r in refused} == {"2"}
    assert "2 messages are waiting" in refused[0].json()["detail"]
    assert [r.status_code for r in accepted] == [200] * 3
    assert len(customer_texts(live, cid)) == 3


def test_a_turn_not_started_before_its_deadline_is_503_and_stores_nothing(server_workspace, tmp_path):
    settings = quiet_settings(copy_workspace(server_workspace, tmp_path / "ws"), workers=1, turn_deadline_seconds=0.5)
    gate = GatedAssistant(settings)
    with serving(settings, gate.factory) as (live, _rt), ThreadPoolExecutor(1) as threads:
        cid = live.new_conversation()
        first = threads.submit(live.say, cid, "hello")
        gate.wait_entered()
        late = live.say(cid, "where is my order?")  # the worker is still busy at its deadline
        gate.opened.set()
        assert first.result().status_code == 200
        assert live.say(cid, "thanks").status_code == 200  # taken after the dropped turn's place
        texts = customer_texts(live, cid)

    assert late.status_code == 503 and late.json()["code"] == "turn_deadline"
    assert late.headers["retry-after"] == "1"
    assert "nothing was stored" in late.json()["detail"]
    assert texts == ["hello", "thanks"]


def test_a_turn_whose_client_left_before_it_started_is_never_taken(server_workspace, tmp_path):
    settings = quiet_settings(copy_workspace(server_workspace, tmp_path / "ws"), workers=1)
    gate = GatedAssistant(settings)
    with serving(settings, gate.factory) as (live, rt), ThreadPoolExecutor(1) as threads:
        cid = live.new_conversation()
        port = int(live.url.rsplit(":", 1)[1])
        first = threads.submit(live.say, cid, "hello")
        gate.wait_entered()
        headers = {**live.auth(cid), "Content-Type": "application/json"}
        for path, text in (("/messages", "where is my order?"), ("/messages/stream", "can I pay with paypal?")):
            body = json.dumps({"text": text}).encode()
            # sent, then the client goes away while the turn waits for the busy worker
            sock = send_request(port, "POST", f"/api/v1/conversations/{cid}{path}", headers, body)
            until(lambda: len(rt.pool.queue.waiting) == 1, f"the {path} turn waiting")
            sock.close()
            until(lambda: len(rt.pool.queue.waiting) == 0, f"the {path} turn dropped once its client left")
        gate.opened.set()
        assert first.result().status_code == 200
        assert live.say(cid, "thanks").status_code == 200
        texts = customer_texts(live, cid)

    assert texts == ["hello", "thanks"]
