"""Who may read what: a conversation opens only with its access token, channel ids are
not computable from public input, replies carry nothing of other customers, and a
customer can erase their conversation. Against the real app on 127.0.0.1."""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.slow

WRONG = {"X-Conversation-Token": "A" * 43}


def _calls(cid: str, message_id: int = 1) -> list[tuple[str, str, dict | None]]:
    base = f"/api/v1/conversations/{cid}"
    return [
        ("GET", base, None),
        ("GET", f"{base}?before=5&limit=2", None),
        ("GET", f"{base}/events", None),
        ("POST", f"{base}/messages", {"text": "hello"}),
        ("POST", f"{base}/messages/stream", {"text": "hello"}),
        ("POST", f"{base}/messages/{message_id}/feedback", {"rating": "down"}),
        ("POST", f"{base}/csat", {"score": 1}),
        ("DELETE", base, None),
    ]


def test_a_conversation_answers_nothing_without_its_token_and_the_same_404_as_an_unknown_id(api):
    cid = api.new_conversation()
    reply = api.say(cid, "my email is dana@example.org, where is my order?").json()
    unknown = api.client.get("/api/v1/conversations/ffffffffffffffffffffffffffffffff", headers=WRONG)
    assert unknown.status_code == 404
    other = api.new_conversation()  # a real token, of another conversation
    for headers in ({}, WRONG, api.auth(other), {"X-Conversation-Token": ""}, {"X-Conversation-Token": "x" * 5000}):
        for method, path, body in _calls(cid, reply["message_id"]):
            r = api.client.request(method, path, json=body, headers=headers)
            assert (r.status_code, r.json()) == (404, unknown.json()), (method, path, headers.keys())
    with api.store() as store:  # nothing was written, rated or erased
        assert len(store.messages(cid)) == 2
        assert store.feedback_ratings().get(reply["message_id"]) is None and store.csat(cid) == []
    assert api.get(cid).status_code == 200


def test_the_token_is_never_stored_only_its_hash(api):
    cid = api.new_conversation()
    with api.store() as store:
        row = store.conversation(cid)
    assert row["token_hash"] and api.tokens[cid] not in str(row)


def test_a_rasa_sender_id_no_longer_leads_to_its_conversation(api):
    r = api.client.post(
        "/webhooks/rest/webhook",
        json={"sender": "user-42", "message": "my email is kim@example.org, phone 555-010-9999"},
    )
    assert r.status_code == 200
    # the id an attacker could compute before: uuid5 of the sender under a namespace in the source
    guessed = uuid.uuid5(uuid.UUID("6c1d3c36-92a2-4d5e-9a57-4ad1c1b1c9f1"), "user-42").hex
    with api.store() as store:
        assert not store.conversation_exists(guessed)
        [rest] = [
            c
            for c in store.iter_conversations()
            if c["channel"] == "rest" and "kim@example.org" in store.messages(c["id"])[0]["text"]
        ]
    for headers in ({}, WRONG):
        assert api.client.get(f"/api/v1/conversations/{rest['id']}", headers=headers).status_code == 404


def test_a_reply_after_an_order_lookup_cites_no_other_customers_conversation(api):
    cid = api.new_conversation()
    # an order's own details come from the orders database (which needs the email on it);
    # a problem with an order is answered from retrieved transcripts, other customers' ones
    reply = api.say(cid, "my order #12345678 came with the wrong item").json()
    assert set(reply) == {"conversation_id", "message_id", "reply", "action", "buttons", "sources", "ends_conversation"}
    with api.store() as store:
        stored = store.messages(cid)[-1]["sources"]
    assert stored, "the turn retrieved transcripts; the store keeps them for agents"
    # every transcript hit stays inside; only knowledge-base articles may be cited
    assert all(s["id"].startswith("kb-") for s in reply["sources"])
    assert not any("#t" in s["id"] for s in reply["sources"])


def test_a_card_number_is_never_echoed_and_is_stored_masked(api):
    cid = api.new_conversation()
    reply = api.say(cid, "I was charged twice on my card 4242 4242 4242 4242", client_message_id="card-1").json()
    # a re-send of the same message finds its stored turn, though the stored text is masked
    again = api.say(cid, "I was charged twice on my card 4242 4242 4242 4242", client_message_id="card-1")
    assert again.status_code == 200 and again.json()["message_id"] == reply["message_id"]
    assert "4242 4242 4242 4242" not in str(reply) and "4242424242424242" not in str(reply)
    history = api.get(cid).json()
    assert "4242 4242 4242 4242" not in str(history)
    with api.store() as store:
        assert "4242 4242 4242 4242" not in store.messages(cid)[0]["text"]
        assert "4242 4242 4242 4242" not in str(store.load_state(cid))


def test_an_idle_conversation_stops_answering_to_its_token(api):
    cid = api.new_conversation()
    api.say(cid, "hello")
    assert api.get(cid).status_code == 200
    with api.store() as store:  # as if its last message were 31 days old (the window is 30)
        old = (datetime.now(UTC) - timedelta(days=31)).isoformat(timespec="milliseconds")
        store.db.execute("update conversations set updated_at = ? where id = ?", [old, cid])
        store.db.commit()
    assert api.get(cid).status_code == 404
    assert api.say(cid, "hello again").status_code == 404


def test_history_comes_a_page_at_a_time(api):
    cid = api.new_conversation()
    for text in ("hello", "can I pay with paypal?", "thanks"):
        api.say(cid, text)
    page = api.get(cid, params={"limit": 4}).json()
    assert [m["role"] for m in page["messages"]] == ["customer", "bot", "customer", "bot"]
    assert page["messages"][0]["text"] == "can I pay with paypal?" and page["has_more"] is True
    older = api.get(cid, params={"limit": 4, "before": page["messages"][0]["message_id"]}).json()
    assert older["messages"][0]["text"] == "hello" and len(older["messages"]) == 2
    assert older["has_more"] is False
    # the server's page size caps what a client may ask for
    assert api.get(cid, params={"limit": 501}).status_code == 422


def test_delete_erases_the_conversation_from_the_store_and_the_training_pairs(api):
    cid = api.new_conversation()
    reply = api.say(cid, "can I pay with paypal?").json()
    api.post(cid, f"/messages/{reply['message_id']}/feedback", {"rating": "up"})
    api.post(cid, "/csat", {"score": 4})
    api.say(cid, "I want to talk to a person")
    # a training pair built from it, as the learning loop writes them inside the workspace
    pairs = api.settings.workspace / "finetune" / "rounds" / "r-delete" / "pairs"
    pairs.mkdir(parents=True)
    kept = {"id": "other#1", "conversation_id": "other", "turn": 1, "context": [], "evidence": [], "target": "ok"}
    mine = {**kept, "id": f"{cid}#1", "conversation_id": cid, "target": "You can pay with PayPal."}
    (pairs / "train.jsonl").write_text("\n".join(json.dumps(x) for x in (kept, mine)) + "\n")
    r = api.client.delete(f"/api/v1/conversations/{cid}", headers=api.auth(cid))
    assert r.status_code == 204
    assert api.get(cid).status_code == 404
    with api.store() as store:
        assert not store.conversation_exists(cid)
        for table, column in (
            ("messages", "conversation_id"),
            ("csat", "conversation_id"),
            ("handoffs", "conversation_id"),
        ):
            assert store.db.count_where(table, f"{column} = ?", [cid]) == 0
        assert reply["message_id"] not in store.feedback_ratings()
    assert [json.loads(line)["conversation_id"] for line in (pairs / "train.jsonl").read_text().splitlines()] == [
        "other"
    ]


def test_the_store_and_the_secret_are_readable_by_the_service_user_only(api):
    api.client.post("/webhooks/rest/webhook", json={"sender": "perm-check", "message": "hi"})
    workspace = api.settings.workspace
    for name in ("store.db", "store.db-wal", "secret.key"):
        path = workspace / name
        if path.exists():
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name
