"""Bad input gets a clear 4xx, stores nothing, and is never rendered as markup."""

from __future__ import annotations

import json

import pytest

from tests.bot.server.conftest import live_server, quiet_settings

pytestmark = pytest.mark.slow

EMOJI_100KB = "😀" * 25_600  # 4 bytes each in UTF-8


@pytest.fixture(scope="module")
def conversation(api) -> str:
    cid = api.new_conversation()
    api.say(cid, "hello")
    return cid


def stored(api, cid) -> list:
    with api.store() as store:
        return [(m["id"], m["text"]) for m in store.messages(cid)], store.db.count_where("messages", "1 = 1")


def post_raw(api, cid, content: bytes | str, stream: bool = False, **headers):
    path = f"/api/v1/conversations/{cid}/messages" + ("/stream" if stream else "")
    return api.client.post(
        path, content=content, headers={"Content-Type": "application/json", **api.auth(cid), **headers}
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (json.dumps({"text": EMOJI_100KB}, ensure_ascii=False), 413, "the limit is 16384 bytes"),
        (json.dumps({"text": "x" * 20_000}), 413, "CSBOT_MAX_BODY_BYTES"),
        ('{"text": "hello"', 422, "JSON"),
        ("not json at all", 422, "JSON"),
        (json.dumps(["hello"]), 422, "valid dictionary"),
        (json.dumps({"text": 5}), 422, "valid string"),
        (json.dumps({"text": None}), 422, "valid string"),
        (json.dumps({"txt": "hello"}), 422, "Field required"),
        (json.dumps({"text": "hi", "client_message_id": 7}), 422, "valid string"),
        (json.dumps({"text": "hi", "client_message_id": "has spaces"}), 422, "pattern"),
        (json.dumps({"text": ""}), 422, "empty"),
        (json.dumps({"text": " \n\t "}), 422, "empty"),
        (json.dumps({"text": "x" * 4001}), 422, "the limit is 4000"),
        (json.dumps({"text": "😀" * 4001}, ensure_ascii=False), 422, "the limit is 4000"),
        (json.dumps({"text": "<script>alert('hi')</script>"}), 422, "HTML or script"),
        (json.dumps({"text": "where is <b>my</b> order"}), 422, "HTML or script"),
        (json.dumps({"text": "<img src=x onerror=alert(1)>"}), 422, "HTML or script"),
        (json.dumps({"text": "see javascript:alert(1)"}), 422, "HTML or script"),
        (json.dumps({"text": "<x-card onclick=alert(1)>hi</x-card>"}), 422, "HTML or script"),
        (json.dumps({"text": "<svg/onload=alert(1)>"}), 422, "HTML or script"),
        (json.dumps({"text": "bell\u0007 and null\u0000"}), 422, "U+0007"),
        (json.dumps({"text": "escape \u001b[31m red"}), 422, "U+001B"),
    ],
)
def test_bad_bodies_get_a_clear_4xx_as_plain_json_and_store_nothing(api, conversation, body, status, says, stream):
    before = stored(api, conversation)
    r = post_raw(api, conversation, body, stream=stream)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert says in json.dumps(r.json()["detail"])
    if status == 422 and isinstance(r.json()["detail"], list):
        assert r.json()["detail"][0]["loc"][0] == "body"
        assert "input" not in r.json()["detail"][0]  # the refused text is not echoed back
    assert stored(api, conversation) == before


def test_a_chunked_body_over_the_limit_is_413_before_it_is_read_whole(api, conversation):
    before = stored(api, conversation)

    def chunks():
        for _ in range(64):
            yield b'{"text": "' + b"x" * 1024  # 64 KB, no Content-Length

    r = post_raw(api, conversation, chunks())
    assert r.status_code == 413 and "16384 bytes" in r.json()["detail"]
    assert stored(api, conversation) == before


def test_an_unknown_conversation_is_404_and_stores_nothing(api):
    with api.store() as store:
        before = store.db.count_where("messages", "1 = 1")
    r = api.client.post(
        "/api/v1/conversations/0123456789abcdef0123456789abcdef/messages",
        json={"text": "hello"},
        headers={"X-Conversation-Token": "x" * 43},
    )
    assert r.status_code == 404
    assert "POST /api/v1/conversations" in r.json()["detail"]
    with api.store() as store:
        assert store.db.count_where("messages", "1 = 1") == before
        assert not store.conversation_exists("0123456789abcdef0123456789abcdef")


@pytest.mark.parametrize("bad_id", ["has space", "x" * 65, "semi;colon"])
def test_a_malformed_conversation_id_is_422_naming_the_path(api, bad_id):
    r = api.client.post(f"/api/v1/conversations/{bad_id}/messages", json={"text": "hi"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "conversation_id"]


def test_a_message_id_that_is_not_a_number_is_422(api):
    cid = api.new_conversation()
    r = api.post(cid, "/messages/abc/feedback", {"rating": "up"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "message_id"]


def test_markup_like_text_that_is_not_html_is_accepted_and_returned_as_text(api, conversation):
    text = "I'd rate you 5 <3 and 2 < 3 > 1; my <order number> is on the way"
    reply = api.say(conversation, text).json()
    with api.store() as store:
        assert store.messages(conversation)[-2]["text"] == text
    assert reply["message_id"]


def test_100_kb_of_emoji_within_a_larger_body_limit_is_422_naming_the_character_limit(server_workspace, tmp_path):
    from tests.bot.server.conftest import copy_workspace

    workspace = copy_workspace(server_workspace, tmp_path / "ws")
    with live_server(quiet_settings(workspace, max_body_bytes=1_000_000)) as live:
        cid = live.new_conversation()
        r = live.say(cid, EMOJI_100KB)
        assert r.status_code == 422
        assert "25600 characters; the limit is 4000" in r.json()["detail"][0]["msg"]
        with live.store() as store:
            assert store.messages(cid) == []
