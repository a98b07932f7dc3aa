"""The assist panel's model-backed reads on the real app (a copy of the demo workspace,
the real MiniLM, FAISS and composer): suggested replies for the latest customer message,
logged as shown and followed to what the agent did with them; similar past conversations;
and the knowledge search."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.bot.server.agent_panel import PANEL, Browser, PanelServer, handed_off, panel_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def panel(demo_workspace, tmp_path_factory) -> Iterator[PanelServer]:
    with panel_server(demo_workspace, tmp_path_factory.mktemp("assist")) as server:
        yield server


@pytest.fixture(scope="module")
def agent(panel) -> Browser:
    return panel.new_agent()


def _waiting_with_question(panel: PanelServer, question: str) -> tuple[str, int]:
    """A handed-over conversation whose customer then asked `question`; its message id."""
    cid = handed_off(panel.live)
    r = panel.live.say(cid, question)
    assert r.status_code == 200 and r.json()["action"] == "handoff", r.text
    with panel.live.store() as store:
        return cid, max(m["id"] for m in store.messages(cid) if m["role"] == "customer")


def test_suggestions_answer_the_latest_customer_message_with_their_sources(panel, agent):
    cid, asked = _waiting_with_question(panel, "How do I return an item I bought?")
    r = agent.get(f"/conversations/{cid}/suggestions")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["for_message_id"] == asked
    suggestions = body["suggestions"]
    assert 1 <= len(suggestions) <= 3
    assert len({" ".join(s["text"].lower().split()) for s in suggestions}) == len(suggestions)
    for s in suggestions:
        assert s["kind"] in ("generated", "retrieved") and s["outcome"] == "shown" and s["text"].strip()
        assert s["sources"], s
        for source in s["sources"]:
            assert source["kind"] in ("kb", "transcript", "qa") and source["text"] and 0 < source["score"] <= 1
    # what the agent saw is logged, per agent and message
    with panel.live.store() as store:
        logged = list(store.db.query("select id, agent_id, outcome from suggestions where conversation_id = ?", [cid]))
    assert [row["id"] for row in logged] == [s["suggestion_id"] for s in suggestions]
    assert {row["outcome"] for row in logged} == {"shown"}
    # the similar conversations are past transcripts, one entry each
    similar = body["similar"]
    assert similar and len({c["conversation_id"] for c in similar}) == len(similar)
    assert all(c["kind"] == "transcript" for c in similar)


def test_asking_again_for_the_same_message_returns_the_logged_suggestions(panel, agent):
    cid, _ = _waiting_with_question(panel, "Can I pay with PayPal?")
    first = agent.get(f"/conversations/{cid}/suggestions").json()
    again = agent.get(f"/conversations/{cid}/suggestions").json()
    assert [s["suggestion_id"] for s in again["suggestions"]] == [s["suggestion_id"] for s in first["suggestions"]]


def test_a_newer_customer_message_gets_new_suggestions(panel, agent):
    cid, asked = _waiting_with_question(panel, "Can I pay with PayPal?")
    first = agent.get(f"/conversations/{cid}/suggestions").json()
    assert panel.live.say(cid, "How long does delivery take?").status_code == 200
    newer = agent.get(f"/conversations/{cid}/suggestions").json()
    assert newer["for_message_id"] > asked == first["for_message_id"]
    assert not {s["suggestion_id"] for s in newer["suggestions"]} & {s["suggestion_id"] for s in first["suggestions"]}


def test_an_edited_suggestion_is_logged_with_its_final_text_and_another_can_be_discarded(panel, agent):
    cid, _ = _waiting_with_question(panel, "How do I return an item I bought?")
    suggestions = agent.get(f"/conversations/{cid}/suggestions").json()["suggestions"]
    chosen = suggestions[0]
    edited = "Hi, I'm here to help. " + chosen["text"]
    assert agent.post(f"/conversations/{cid}/claim").status_code == 200
    sent = agent.post(f"/conversations/{cid}/messages", {"text": edited, "suggestion_id": chosen["suggestion_id"]})
    assert sent.status_code == 201, sent.text
    if len(suggestions) > 1:
        r = agent.post(f"/conversations/{cid}/suggestions/{suggestions[1]['suggestion_id']}/discard")
        assert r.status_code == 204, r.text
    with panel.live.store() as store:
        rows = {r["id"]: r for r in store.db.query("select * from suggestions where conversation_id = ?", [cid])}
        [message] = [m for m in store.messages(cid) if m["id"] == sent.json()["message_id"]]
    assert (rows[chosen["suggestion_id"]]["outcome"], rows[chosen["suggestion_id"]]["final_text"]) == ("edited", edited)
    assert (message["edited_from"], message["suggestion_id"]) == (chosen["text"], chosen["suggestion_id"])
    if len(suggestions) > 1:
        assert rows[suggestions[1]["suggestion_id"]]["outcome"] == "discarded"


def test_a_suggestion_is_discarded_only_in_its_own_conversation(panel, agent):
    cid, _ = _waiting_with_question(panel, "Can I pay with PayPal?")
    other, _ = _waiting_with_question(panel, "How long does delivery take?")
    sid = agent.get(f"/conversations/{cid}/suggestions").json()["suggestions"][0]["suggestion_id"]
    r = agent.post(f"/conversations/{other}/suggestions/{sid}/discard")
    assert r.status_code == 404, r.text
    with panel.live.store() as store:
        assert store.db.execute("select outcome from suggestions where id = ?", [sid]).fetchone()[0] == "shown"


def test_a_conversation_without_customer_messages_has_no_suggestions(panel, agent):
    cid = panel.live.new_conversation()
    assert agent.get(f"/conversations/{cid}/suggestions").json() == {
        "for_message_id": None,
        "suggestions": [],
        "similar": [],
    }


def test_search_finds_the_article_and_past_conversations(panel, agent):
    r = agent.get("/search", params={"q": "return policy refund", "k": 8})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert 0 < len(hits) <= 8
    assert any(h["kind"] == "kb" for h in hits)
    only_kb = agent.get("/search", params={"q": "return policy refund", "kind": "kb"}).json()["hits"]
    assert only_kb and {h["kind"] for h in only_kb} == {"kb"}


@pytest.mark.parametrize(
    ("params", "status"), [({"q": ""}, 422), ({"q": "x" * 501}, 422), ({"q": "refund", "k": 0}, 422)]
)
def test_a_bad_search_is_refused(agent, params, status):
    assert agent.get("/search", params=params).status_code == status


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/conversations/0123456789abcdef0123456789abcdef/suggestions"),
        ("POST", "/conversations/0123456789abcdef0123456789abcdef/suggestions/1/discard"),
        ("GET", "/search?q=refund"),
    ],
)
def test_nothing_is_reachable_without_a_session(panel, method, path):
    r = httpx.request(method, panel.url + PANEL + path)
    assert r.status_code == 401 and r.json()["code"] == "not_signed_in"


def test_discarding_needs_the_csrf_token(panel, agent):
    cid, _ = _waiting_with_question(panel, "Can I pay with PayPal?")
    sid = agent.get(f"/conversations/{cid}/suggestions").json()["suggestions"][0]["suggestion_id"]
    r = agent.client.post(f"{PANEL}/conversations/{cid}/suggestions/{sid}/discard")
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
