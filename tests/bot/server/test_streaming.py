"""Replies streamed over Server-Sent Events, and a conversation's live events (agent
messages and handoffs) read from the store."""

from __future__ import annotations

import pytest

from bot.server import events
from tests.bot.server.conftest import next_event, sse_events

REPLY_FIELDS = {"conversation_id", "message_id", "reply", "action", "buttons", "sources", "ends_conversation"}


def test_an_event_is_one_json_data_line_with_an_optional_id():
    assert events.event("text", {"text": "a\nb"}) == b'event: text\ndata: {"text":"a\\nb"}\n\n'
    assert (
        events.event("agent_message", {"x": "é"}, event_id=7)
        == 'event: agent_message\nid: 7\ndata: {"x":"é"}\n\n'.encode()
    )
    assert events.comment("ping") == b": ping\n\n"
    with pytest.raises(ValueError):
        events.event("bad\nname", {})


@pytest.mark.slow
def test_a_streamed_reply_is_typing_then_text_pieces_then_the_final_reply_object(api):
    cid = api.new_conversation()
    with api.client.stream(
        "POST",
        f"/api/v1/conversations/{cid}/messages/stream",
        headers=api.auth(cid),
        json={"text": "can I pay with paypal?", "client_message_id": "s-1"},
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"].startswith("no-cache")
        received = list(sse_events(r))
    names = [e["event"] for e in received]
    assert names[0] == "typing" and received[0]["data"] == {}
    assert names[-1] == "final" and set(names[1:-1]) == {"text"} and len(names) > 4
    final = received[-1]["data"]
    assert set(final) == REPLY_FIELDS and final["action"] == "answer"
    assert "".join(e["data"]["text"] for e in received[1:-1]) == final["reply"]
    with api.store() as store:
        assert store.messages(cid)[-1]["id"] == final["message_id"]


@pytest.mark.slow
def test_errors_known_before_the_stream_opens_are_plain_json(api):
    r = api.client.post(
        "/api/v1/conversations/0123456789abcdef/messages/stream",
        json={"text": "hi"},
        headers={"X-Conversation-Token": "x" * 43},
    )
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert r.json()["code"] == "conversation_not_found"
    cid = api.new_conversation()
    r = api.post(cid, "/messages/stream", {"text": "<script>x</script>"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"


@pytest.mark.slow
def test_an_error_after_the_stream_opened_is_an_error_event_that_ends_it(api):
    cid = api.new_conversation()
    api.say(cid, "hello", client_message_id="dup")
    with api.client.stream(
        "POST",
        f"/api/v1/conversations/{cid}/messages/stream",
        headers=api.auth(cid),
        json={"text": "something else", "client_message_id": "dup"},
    ) as r:
        assert r.status_code == 200
        received = list(sse_events(r))
    assert [e["event"] for e in received] == ["typing", "error"]
    assert received[-1]["data"]["status"] == 409 and "dup" in received[-1]["data"]["detail"]
    assert received[-1]["data"]["code"] == "client_message_id_conflict"
    with api.store() as store:
        assert len(store.messages(cid)) == 2


@pytest.mark.slow
def test_a_handoff_and_then_agent_messages_arrive_live_on_the_events_stream(api):
    cid = api.new_conversation()
    handoff_reply = api.say(cid, "I want to talk to a person").json()
    assert handoff_reply["action"] == "handoff"
    with api.client.stream("GET", f"/api/v1/conversations/{cid}/events", headers=api.auth(cid)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        stream = sse_events(r)
        handoff = next_event(stream, "handoff")
        assert handoff["data"]["reason"] == "customer asked for a human"
        assert handoff["id"] == str(handoff_reply["message_id"])
        with api.store() as store:  # what the agent panel (a later issue) will do
            agent_id = store.record_agent_message(cid, "Hi, I'm Sam from support. How can I help?")
        message = next_event(stream, "agent_message")
    assert message["id"] == str(agent_id)
    assert message["data"]["message_id"] == agent_id
    assert message["data"]["text"] == "Hi, I'm Sam from support. How can I help?"
    assert message["data"]["created_at"]


@pytest.mark.slow
def test_a_reconnect_with_last_event_id_gets_only_what_came_after(api):
    cid = api.new_conversation()
    api.say(cid, "I want to talk to a person")
    with api.store() as store:
        first = store.record_agent_message(cid, "first")
        second = store.record_agent_message(cid, "second")
    with api.client.stream(
        "GET", f"/api/v1/conversations/{cid}/events", headers={"Last-Event-ID": str(first), **api.auth(cid)}
    ) as r:
        message = next_event(sse_events(r), "agent_message")
    assert message["data"]["text"] == "second" and message["id"] == str(second)
    with api.client.stream(
        "GET", f"/api/v1/conversations/{cid}/events", params={"after": second}, headers=api.auth(cid)
    ) as r:
        stream = sse_events(r)
        with api.store() as store:
            third = store.record_agent_message(cid, "third")
        item = next(i for i in stream if "comment" not in i)
    assert item["event"] == "agent_message" and item["id"] == str(third)


@pytest.mark.slow
def test_an_idle_events_stream_sends_ping_comments(api):
    cid = api.new_conversation()
    with api.client.stream("GET", f"/api/v1/conversations/{cid}/events", headers=api.auth(cid)) as r:
        first = next(sse_events(r))  # events_ping_seconds is 0.5 s in the test settings
    assert first == {"comment": "ping"}


@pytest.mark.slow
def test_events_of_an_unknown_conversation_or_without_its_token_or_a_bad_last_event_id_are_plain_4xx(api):
    r = api.client.get("/api/v1/conversations/0123456789abcdef/events", headers={"X-Conversation-Token": "x" * 43})
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    cid = api.new_conversation()
    r = api.client.get(f"/api/v1/conversations/{cid}/events")
    assert r.status_code == 404 and r.json()["code"] == "conversation_not_found"
    r = api.client.get(f"/api/v1/conversations/{cid}/events", headers={"Last-Event-ID": "abc", **api.auth(cid)})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["header", "last-event-id"]
