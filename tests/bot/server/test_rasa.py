"""The Rasa REST channel: scripts and widgets written for Rasa work unchanged."""

from __future__ import annotations

import pytest

from bot.server.access import SECRET_FILE, channel_conversation_id

pytestmark = pytest.mark.slow


def rasa(api, sender, message):
    return api.client.post("/webhooks/rest/webhook", json={"sender": sender, "message": message})


def test_a_message_gets_a_list_of_bot_messages_addressed_to_the_sender(api):
    r = rasa(api, "rasa-user-1", "can I pay with paypal?")
    assert r.status_code == 200
    [message] = r.json()
    assert message["recipient_id"] == "rasa-user-1"
    assert "PayPal" in message["text"]
    assert "buttons" not in message  # only when there are buttons, as Rasa does


def test_one_sender_talks_in_one_conversation_of_the_rest_channel(api):
    rasa(api, "rasa-user-2", "where is my order?")
    [asked] = rasa(api, "rasa-user-2", "it's #40318275").json()
    assert "email" in asked["text"].lower()  # the order's details need the email on it
    [answer] = rasa(api, "rasa-user-2", "jamie.rivera@example.com").json()
    assert "#40318275" in answer["text"] and "PA1234567890" in answer["text"]
    secret = (api.settings.workspace / SECRET_FILE).read_bytes().strip()
    cid = channel_conversation_id(secret, "rest", "rasa-user-2")
    with api.store() as store:
        assert store.conversation(cid)["channel"] == "rest"
        assert [m["role"] for m in store.messages(cid)] == ["customer", "bot"] * 3
    assert channel_conversation_id(secret, "rest", "rasa-user-3") != cid
    # the public API never serves a channel conversation: it has no access token
    assert api.client.get(f"/api/v1/conversations/{cid}", headers={"X-Conversation-Token": "x" * 43}).status_code == 404


def test_choices_come_as_buttons_whose_payload_picks_them(api):
    [clarify] = rasa(api, "rasa-user-4", "change track").json()
    assert len(clarify["buttons"]) == 2
    assert all(b["title"] == b["payload"] for b in clarify["buttons"])
    [picked] = rasa(api, "rasa-user-4", clarify["buttons"][0]["payload"]).json()
    assert picked["text"] != clarify["text"]


def test_the_channel_root_answers_like_rasas(api):
    assert api.client.get("/webhooks/rest/").json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": "hi"}, "sender"),
        ({"sender": "u"}, "message"),
        ({"sender": "", "message": "hi"}, "sender"),
        ({"sender": 5, "message": "hi"}, "sender"),
        ({"sender": "u", "message": "<img src=x onerror=alert(1)>"}, "message"),
        ({"sender": "u", "message": "x" * 4001}, "message"),
    ],
)
def test_a_bad_body_is_422_naming_the_field_and_stores_nothing(api, body, field):
    with api.store() as store:
        before = store.db.count_where("messages", "1 = 1")
    r = api.client.post("/webhooks/rest/webhook", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", field]
    with api.store() as store:
        assert store.db.count_where("messages", "1 = 1") == before
