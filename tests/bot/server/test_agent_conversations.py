"""The agents' queue and conversations through the panel API, after real customer turns:
claiming, writing to the customer (live on their events stream), handing back to the
bot, resolving; races between agents; notes that stay internal; the panel's live events."""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack

import pytest

from bot.store import MessageRecord
from tests.bot.server.agent_panel import Browser, handed_off, panel_server
from tests.bot.server.conftest import next_event, sse_events

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def panel(demo_workspace, tmp_path_factory):
    with panel_server(demo_workspace, tmp_path_factory.mktemp("agent-conversations")) as server:
        yield server


def _queue_ids(browser: Browser) -> dict[str, set[str]]:
    r = browser.get("/queue")
    assert r.status_code == 200, r.text
    return {name: {item["conversation_id"] for item in items} for name, items in r.json().items()}


def test_a_handoff_waits_in_the_queue_and_moves_through_claim_hand_back_and_resolve(panel):
    live, agent = panel.live, panel.new_agent()
    cid = handed_off(live)

    queue = agent.get("/queue").json()
    waiting = next(i for i in queue["pending"] if i["conversation_id"] == cid)
    assert waiting["reason"] == "customer asked for a human"
    assert waiting["last_customer_text"] == "I want to talk to a human"
    assert waiting["channel"] == "web" and waiting["waiting_seconds"] >= 0 and waiting["messages"] == 2

    claimed = agent.post(f"/conversations/{cid}/claim")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["conversation"]["handling"] == "open"
    assert claimed.json()["conversation"]["agent"] == agent.name
    assert cid in _queue_ids(agent)["open"] and cid not in _queue_ids(agent)["pending"]
    assert agent.post(f"/conversations/{cid}/claim").status_code == 200  # claiming one's own: no change

    back = agent.post(f"/conversations/{cid}/hand-back")
    assert back.status_code == 200 and back.json()["conversation"]["handling"] == "bot"
    assert back.json()["conversation"]["agent"] is None
    assert agent.post(f"/conversations/{cid}/claim").json()["code"] == "invalid_transition"

    taken = agent.post(f"/conversations/{cid}/take-over")
    assert taken.json()["conversation"]["handling"] == "open"
    resolved = agent.post(f"/conversations/{cid}/resolve", {"tags": ["refund", "vip customer"]})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["conversation"]["handling"] == "resolved"
    assert resolved.json()["conversation"]["tags"] == ["refund", "vip customer"]
    assert cid not in _queue_ids(agent)["open"]


def test_the_conversation_view_shows_what_the_bot_did_and_who_wrote(panel):
    live, agent = panel.live, panel.new_agent()
    cid = live.new_conversation()
    answered = live.say(cid, "how do I return an item?").json()
    sent = agent.post(f"/conversations/{cid}/messages", {"text": "Hi, this is support."})
    assert sent.status_code == 201, sent.text

    view = agent.get(f"/conversations/{cid}")
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["conversation"]["id"] == cid and body["conversation"]["handling"] == "open"
    assert body["conversation"]["reason"] == "agent took over" and body["csat"] is None
    customer, bot, mine = body["messages"]
    assert customer["role"] == "customer" and customer["text"] == "how do I return an item?"
    assert bot["message_id"] == answered["message_id"] and bot["role"] == "bot"
    assert bot["intent"] and bot["confidence"] is not None and bot["composer"] and bot["action"] == answered["action"]
    assert bot["sources"], "a bot answer keeps its sources"
    assert all({"id", "score", "kind", "title", "text"} <= set(s) for s in bot["sources"])
    assert {s["kind"] for s in bot["sources"]} <= {"kb", "transcript", "qa"}
    assert mine == {**mine, "role": "agent", "text": "Hi, this is support.", "agent": agent.name, "edited_from": None}
    assert mine["message_id"] == sent.json()["message_id"]


def test_two_agents_claiming_at_once_get_one_200_and_one_409_naming_the_holder(panel):
    cid = handed_off(panel.live)
    ann, bob = panel.new_agent(), panel.new_agent()
    start = threading.Barrier(2)
    results: dict[str, tuple[int, dict]] = {}

    def claim(browser: Browser) -> None:
        start.wait()
        r = browser.post(f"/conversations/{cid}/claim")
        results[browser.name] = (r.status_code, r.json())

    threads = [threading.Thread(target=claim, args=(b,)) for b in (ann, bob)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(status for status, _ in results.values())
    assert statuses == [200, 409], results
    winner = next(name for name, (status, _) in results.items() if status == 200)
    loser_body = next(body for status, body in results.values() if status == 409)
    assert loser_body["code"] == "conversation_held"
    assert loser_body["holder"] == winner and winner in loser_body["detail"]
    # and the loser may not write in it either
    loser = bob if winner == ann.name else ann
    r = loser.post(f"/conversations/{cid}/messages", {"text": "me too"})
    assert r.status_code == 409 and r.json()["holder"] == winner


def test_sending_into_a_resolved_conversation_is_409_until_taken_over(panel):
    agent = panel.new_agent()
    cid = handed_off(panel.live)
    assert agent.post(f"/conversations/{cid}/resolve", {"tags": []}).status_code == 200
    r = agent.post(f"/conversations/{cid}/messages", {"text": "one more thing"})
    assert r.status_code == 409 and r.json()["code"] == "conversation_resolved"
    assert agent.post(f"/conversations/{cid}/resolve", {"tags": []}).json()["code"] == "conversation_resolved"
    assert agent.post(f"/conversations/{cid}/take-over").status_code == 200
    assert agent.post(f"/conversations/{cid}/messages", {"text": "one more thing"}).status_code == 201


def test_the_customers_events_stream_receives_the_agents_message(panel):
    live, agent = panel.live, panel.new_agent()
    cid = handed_off(live)
    with live.client.stream("GET", f"/api/v1/conversations/{cid}/events", headers=live.auth(cid)) as r:
        stream = sse_events(r)
        next_event(stream, "handoff")
        sent = agent.post(f"/conversations/{cid}/messages", {"text": "Hi, I'm from support. How can I help?"})
        assert sent.status_code == 201, sent.text
        message = next_event(stream, "agent_message")
    assert message["id"] == str(sent.json()["message_id"])
    assert message["data"]["text"] == "Hi, I'm from support. How can I help?"


def test_the_bot_stays_silent_while_an_agent_holds_it_and_answers_after_hand_back(panel):
    live, agent = panel.live, panel.new_agent()
    cid = handed_off(live)
    agent.post(f"/conversations/{cid}/claim")

    held = live.say(cid, "where is my order?")
    assert held.status_code == 200, held.text
    assert held.json()["reply"] == ""
    with live.store() as store:
        assert [m["role"] for m in store.messages(cid)][-1] == "customer"  # stored, not answered

    assert agent.post(f"/conversations/{cid}/hand-back").status_code == 200
    answered = live.say(cid, "where is my order?").json()
    assert answered["reply"] and answered["action"] != "handoff"
    with live.store() as store:
        assert store.messages(cid)[-1]["role"] == "bot"


def test_notes_stay_internal_and_text_is_returned_verbatim(panel):
    live, agent = panel.live, panel.new_agent()
    cid = handed_off(live)
    note_text = 'customer pasted <script>alert(1)</script> & said "hi"'
    created = agent.post(f"/conversations/{cid}/notes", {"text": note_text})
    assert created.status_code == 201, created.text
    # markup another channel stored as text comes back as that text
    with live.store() as store:
        store.record_customer_message(cid, MessageRecord("customer", "<b>bold?</b><script>x()</script>"))

    view = agent.get(f"/conversations/{cid}").json()
    (note,) = view["notes"]
    assert note["id"] == created.json()["note_id"] and note["agent_name"] == agent.name
    assert note["text"] == note_text and note["created_at"]
    assert view["messages"][-1]["text"] == "<b>bold?</b><script>x()</script>"

    history = live.get(cid).json()
    assert all(note_text not in m["text"] for m in history["messages"])
    assert "alert(1)" not in live.get(cid).text


def test_an_agent_message_must_be_plain_text_without_placeholders_and_within_the_limit(panel):
    agent = panel.new_agent()
    cid = handed_off(panel.live)
    for text, kind in (
        ("<script>alert(1)</script>", "html_markup"),
        ("Your order {{Order Number}} ships today", "placeholder_left"),
        ("   ", "empty_text"),
        ("x" * (panel.live.app.state.runtime.max_message_chars + 1), "string_too_long"),
    ):
        r = agent.post(f"/conversations/{cid}/messages", {"text": text})
        assert r.status_code == 422, (text[:30], r.text)
        assert r.json()["detail"][0]["type"] == kind
    with panel.live.store() as store:
        assert all(m["role"] != "agent" for m in store.messages(cid))


def test_assigning_gives_the_conversation_to_another_agent(panel):
    ann, bob, admin = panel.new_agent(), panel.new_agent(), panel.new_agent("admin")
    cid = handed_off(panel.live)
    ann.post(f"/conversations/{cid}/claim")
    r = bob.post(f"/conversations/{cid}/assign", {"agent": bob.name})
    assert r.status_code == 403 and r.json()["code"] == "forbidden"  # only the holder or an admin
    r = ann.post(f"/conversations/{cid}/assign", {"agent": bob.name})
    assert r.status_code == 200 and r.json()["conversation"]["agent"] == bob.name
    r = admin.post(f"/conversations/{cid}/assign", {"agent": ann.name})
    assert r.status_code == 200 and r.json()["conversation"]["agent"] == ann.name
    assert ann.post(f"/conversations/{cid}/assign", {"agent": "no-such-agent"}).status_code == 404


def test_an_unknown_conversation_is_a_404_on_every_conversation_route(panel):
    agent = panel.new_agent()
    assert agent.get("/conversations/nope").json()["code"] == "not_found"
    for step, body in (("claim", None), ("take-over", None), ("hand-back", None), ("resolve", {"tags": []})):
        r = agent.post(f"/conversations/nope/{step}", body)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (step, r.text)
    assert agent.post("/conversations/nope/messages", {"text": "hello"}).status_code == 404
    assert agent.post("/conversations/nope/notes", {"text": "hello"}).status_code == 404


def test_the_panels_event_stream_reports_queue_changes_and_the_watched_conversations_messages(panel):
    live, agent = panel.live, panel.new_agent()
    cid = handed_off(live)
    last = agent.get(f"/conversations/{cid}").json()["messages"][-1]["message_id"]
    with agent.client.stream("GET", "/api/v1/agent/events", params={"conversation": cid, "after": last}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        stream = sse_events(r)
        first = next_event(stream, "queue")
        assert first["data"]["counts"]["pending"] >= 1 and first["data"]["signature"]

        agent.post(f"/conversations/{cid}/claim")
        changed = next_event(stream, "queue")
        assert changed["data"]["signature"] != first["data"]["signature"]

        live.say(cid, "are you there?")
        customer = next_event(stream, "message")
        assert customer["data"]["role"] == "customer" and customer["data"]["text"] == "are you there?"
        assert int(customer["id"]) > last

        sent = agent.post(f"/conversations/{cid}/messages", {"text": "Yes, I'm here."}).json()
        mine = next_event(stream, "message")
        assert mine["id"] == str(sent["message_id"]) and mine["data"]["agent"] == agent.name


def test_the_panels_event_stream_ends_when_the_session_does(panel):
    agent = panel.new_agent()
    with agent.client.stream("GET", "/api/v1/agent/events") as r:
        stream = sse_events(r)
        next_event(stream, "queue")
        assert agent.delete("/session").status_code == 204
        for _ in stream:  # the stream ends by itself at its next poll
            pass
        assert r.is_stream_consumed


def test_the_panels_event_stream_needs_a_known_conversation(panel):
    agent = panel.new_agent()
    r = agent.get("/events", params={"conversation": "nope"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_an_agent_may_hold_only_a_few_panel_streams_at_once(panel):
    agent = panel.new_agent()
    limit = panel.live.settings.server.max_event_streams_per_client
    readers = []  # kept: a reader dropped half-way closes its connection, and its stream ends
    with ExitStack() as open_streams:
        for _ in range(limit):
            r = open_streams.enter_context(agent.client.stream("GET", "/api/v1/agent/events"))
            assert r.status_code == 200
            readers.append(sse_events(r))
            next_event(readers[-1], "queue")  # running: it holds its place
        with agent.client.stream("GET", "/api/v1/agent/events") as extra:
            assert extra.status_code == 429  # (a 200 would be a stream: not read, so no hang)
            assert json.loads(extra.read())["code"] == "too_many_streams"
