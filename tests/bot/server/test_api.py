"""The REST API against the real app: real workspace, real SQLite, real MiniLM."""

from __future__ import annotations

import shutil
import threading

import pytest

from bot.settings import CsbotSettings
from bot.workspace import Assistant
from tests.bot.server.conftest import live_server, quiet_settings, unloaded_server

pytestmark = pytest.mark.slow

PUBLIC_FIELDS = {"conversation_id", "message_id", "reply", "action", "buttons", "sources", "ends_conversation"}


def test_healthz_and_readyz_answer_once_loaded(api):
    assert api.client.get("/healthz").json() == {"status": "ok"}
    r = api.client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "workers": 1}


def test_the_openapi_schema_documents_every_endpoint(api):
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/conversations",
        "/api/v1/conversations/{conversation_id}/messages",
        "/api/v1/conversations/{conversation_id}/messages/stream",
        "/api/v1/conversations/{conversation_id}",
        "/api/v1/conversations/{conversation_id}/events",
        "/api/v1/conversations/{conversation_id}/messages/{message_id}/feedback",
        "/api/v1/conversations/{conversation_id}/csat",
        "/webhooks/rest/webhook",
        "/healthz",
        "/readyz",
    } <= set(paths)


def test_a_message_gets_the_public_reply_object_and_the_turn_is_stored(api):
    cid = api.new_conversation()
    r = api.say(cid, "can I pay with paypal?")
    assert r.status_code == 200
    reply = r.json()
    assert set(reply) == PUBLIC_FIELDS
    assert reply["conversation_id"] == cid and reply["action"] == "answer" and "PayPal" in reply["reply"]
    assert reply["ends_conversation"] is False
    for source in reply["sources"]:  # citations are knowledge-base articles only
        assert set(source) == {"id", "title", "text"} and source["id"].startswith("kb-"), source
    with api.store() as store:
        messages = store.messages(cid)
    assert [(m["role"], m["text"]) for m in messages] == [
        ("customer", "can I pay with paypal?"),
        ("bot", reply["reply"]),
    ]
    assert messages[1]["id"] == reply["message_id"]


def test_a_conversation_may_be_started_without_a_body_and_names_its_channel(api):
    r = api.client.post("/api/v1/conversations")
    assert r.status_code == 201
    cid, token = r.json()["conversation_id"], r.json()["access_token"]
    assert (
        api.client.get(f"/api/v1/conversations/{cid}", headers={"X-Conversation-Token": token}).json()["channel"]
        == "web"
    )
    other = api.client.post("/api/v1/conversations", json={"channel": "kiosk"}).json()
    assert (
        api.client.get(
            f"/api/v1/conversations/{other['conversation_id']}", headers={"X-Conversation-Token": other["access_token"]}
        ).json()["channel"]
        == "kiosk"
    )


def test_a_task_continues_over_turns_of_one_conversation(api):
    cid = api.new_conversation()
    first = api.say(cid, "where is my order?").json()
    assert first["action"] == "clarify" and "order number" in first["reply"].lower()
    second = api.say(cid, "it's #40318275").json()
    assert second["action"] == "clarify" and "email" in second["reply"].lower()
    third = api.say(cid, "jamie.rivera@example.com").json()
    assert third["action"] == "answer" and "#40318275" in third["reply"]
    assert "slots" not in third  # the conversation's remembered values stay inside
    with api.store() as store:
        assert store.load_state(cid).slots == {
            "order_id": "#40318275",
            "email": "jamie.rivera@example.com",
            "order_status": "shipped",
        }


def test_the_history_has_every_message_with_its_buttons_and_latest_feedback(api):
    cid = api.new_conversation()
    clarify = api.say(cid, "change track").json()
    assert clarify["action"] == "clarify" and len(clarify["buttons"]) == 2
    answer = api.say(cid, "can I pay with paypal?").json()
    feedback = f"/messages/{answer['message_id']}/feedback"
    assert api.post(cid, feedback, {"rating": "down"}).status_code == 200
    assert api.post(cid, feedback, {"rating": "up", "comment": "clear"}).json() == {
        "message_id": answer["message_id"],
        "rating": "up",
    }
    history = api.get(cid).json()
    assert history["has_more"] is False
    assert history["conversation_id"] == cid and history["handed_off"] is False
    assert [m["role"] for m in history["messages"]] == ["customer", "bot", "customer", "bot"]
    customer, bot_clarify, _, bot_answer = history["messages"]
    assert set(customer) == {"message_id", "role", "text", "created_at", "action", "buttons", "feedback"}
    assert bot_clarify["buttons"] == clarify["buttons"] and bot_clarify["action"] == "clarify"
    assert bot_answer["message_id"] == answer["message_id"] and bot_answer["feedback"] == "up"
    assert customer["feedback"] is None and customer["buttons"] == []


def test_a_handed_off_conversation_says_so_in_its_history(api):
    cid = api.new_conversation()
    assert api.say(cid, "I want to talk to a person").json()["action"] == "handoff"
    assert api.get(cid).json()["handed_off"] is True


def test_a_resent_client_message_id_returns_the_stored_reply_and_takes_no_second_turn(api):
    cid = api.new_conversation()
    first = api.say(cid, "where is my order?", client_message_id="m-1").json()
    again = api.say(cid, "where is my order?", client_message_id="m-1").json()
    assert again["message_id"] == first["message_id"] and again["reply"] == first["reply"]
    assert again["action"] == first["action"] and again["sources"] == first["sources"]
    streamed = api.post(cid, "/messages/stream", {"text": "where is my order?", "client_message_id": "m-1"})
    assert f'"message_id":{first["message_id"]}' in streamed.text
    with api.store() as store:
        assert len(store.messages(cid)) == 2
    # a new id is a new turn
    assert api.say(cid, "where is my order?", client_message_id="m-2").json()["message_id"] != first["message_id"]


def test_a_client_message_id_reused_for_other_text_is_409_and_stores_nothing(api):
    cid = api.new_conversation()
    api.say(cid, "hello", client_message_id="same")
    r = api.say(cid, "can I pay with paypal?", client_message_id="same")
    assert r.status_code == 409
    assert "client_message_id 'same'" in r.json()["detail"]
    with api.store() as store:
        assert [m["text"] for m in store.messages(cid)][0::2] == ["hello"]


def test_feedback_rates_this_conversations_bot_replies_once_each(api):
    cid = api.new_conversation()
    reply = api.say(cid, "hello").json()
    path = f"/messages/{reply['message_id']}/feedback"
    assert api.post(cid, path, {"rating": "up", "comment": None}).status_code == 200
    assert api.post(cid, path, {"rating": "down"}).status_code == 200  # a change replaces the rating
    # a customer message, an unknown id and another conversation's reply: the same 404
    other = api.new_conversation()
    foreign = api.say(other, "hello").json()["message_id"]
    for message_id in (reply["message_id"] - 1, 99999999, foreign):
        r = api.post(cid, f"/messages/{message_id}/feedback", {"rating": "down"})
        assert r.status_code == 404 and r.json()["code"] == "message_not_found", message_id
    meh = api.post(cid, path, {"rating": "meh"})
    assert meh.status_code == 422 and meh.json()["detail"][0]["loc"] == ["body", "rating"]
    with api.store() as store:
        ratings = store.feedback_ratings()
    assert ratings[reply["message_id"]] == ("down",) and foreign not in ratings


def test_csat_is_one_score_from_1_to_5_per_conversation(api):
    cid = api.new_conversation()
    api.say(cid, "thanks, bye")
    assert api.post(cid, "/csat", {"score": 2}).json() == {"score": 2}
    r = api.post(cid, "/csat", {"score": 5, "comment": "quick and clear"})
    assert r.status_code == 200 and r.json() == {"score": 5}
    for bad in (0, 6, "5", 4.5, None):
        r = api.post(cid, "/csat", {"score": bad})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "score"], bad
    assert (
        api.client.post(
            "/api/v1/conversations/nope/csat", json={"score": 3}, headers={"X-Conversation-Token": api.tokens[cid]}
        ).status_code
        == 404
    )
    with api.store() as store:
        assert [(c["score"], c["comment"]) for c in store.csat(cid)] == [(5, "quick and clear")]


def test_cors_allows_only_the_configured_origins(tmp_path):
    settings = quiet_settings(tmp_path, cors_origins="https://shop.example.com")
    with unloaded_server(settings) as live:  # CORS answers before any model is needed
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
        ok = live.client.options("/api/v1/conversations", headers={"Origin": "https://shop.example.com", **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://shop.example.com"
        other = live.client.options("/api/v1/conversations", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers
        # an error answer carries the header too, so the widget can read it
        r = live.client.post("/api/v1/conversations", headers={"Origin": "https://shop.example.com"})
        assert r.status_code == 503 and r.headers["access-control-allow-origin"] == "https://shop.example.com"


def test_no_cross_origin_access_by_default(api):
    r = api.client.get("/healthz", headers={"Origin": "https://shop.example.com"})
    assert "access-control-allow-origin" not in r.headers


def test_readyz_is_503_while_loading_and_the_api_says_retry_until_ready(server_workspace):
    gate = threading.Event()
    config = CsbotSettings.from_env(server_workspace)

    def slow_factory() -> Assistant:
        gate.wait(60)
        return Assistant(config).load()

    with live_server(quiet_settings(server_workspace), slow_factory, wait_ready=False) as live:
        try:
            r = live.client.get("/readyz")
            assert r.status_code == 503 and r.json()["status"] == "loading"
            assert live.client.get("/healthz").status_code == 200
            busy = live.client.post("/api/v1/conversations")
            assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
            assert "loading" in busy.json()["detail"]
        finally:
            gate.set()
        live.wait_ready()
        assert live.client.post("/api/v1/conversations").status_code == 201


def test_a_workspace_that_fails_to_load_is_reported_by_readyz_and_every_call(server_workspace, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copyfile(server_workspace / "workspace.json", broken / "workspace.json")  # no index, no model
    with live_server(quiet_settings(broken), wait_ready=False) as live:
        for _ in range(100):
            r = live.client.get("/readyz")
            if r.json()["status"] != "loading":
                break
            threading.Event().wait(0.1)
        assert r.status_code == 503 and r.json()["status"] == "failed"
        # the reason (with its paths) goes to the server log, not to whoever asks
        assert r.json()["detail"] == "the assistant failed to load; the server log says why"
        assert str(broken) not in r.text
        call = live.client.post("/api/v1/conversations")
        assert call.status_code == 503 and call.json()["code"] == "failed_to_load"
        assert str(broken) not in call.text
